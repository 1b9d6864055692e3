"""Input discovery for ``classify``: files, folders and glob patterns -> an ordered item list.

Every argument the user gave shows up: a missing path or a pattern that matches nothing
becomes an item carrying its error, so nothing is dropped silently. Folders are walked in
sorted order by the shared walker (:func:`edgecnn.image_files.walk`: symbolic-link loops are
entered once, a file reached twice is listed once); every non-hidden file is an input, and one
that is not an image gets a row saying so (images are recognised by content, not by name).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgecnn.image_files import Walk, is_glob, iter_walk


@dataclass(frozen=True)
class Item:
    """One input: its display name, and either a path to read or the error already known."""

    source: str
    path: str | None = None
    error: str | None = None


@dataclass
class Scan:
    """What :func:`scan` found: the items in order, and notes worth telling the user."""

    items: list[Item] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def scan(sources: Iterable[str | Path], recursive: bool = False) -> Scan:
    """Expand files, folders and glob patterns into items, in argument order then sorted."""
    result = Scan()
    for raw in sources:
        result.items.extend(iter_source(raw, recursive, result.notes))
    return result


def iter_source(raw: str | Path, recursive: bool, notes: list[str]) -> Iterator[Item]:
    """The items of one argument, lazily (one folder's listing at a time), appending notes.

    :func:`scan` collects these into a list; a distributed run (``edgecnn.scale``) streams them
    so that millions of paths never sit in one list.
    """
    name = os.fsdecode(raw)
    if os.path.isdir(name):
        yield from _walk(name, recursive, notes)
    elif os.path.lexists(name):
        yield Item(name, path=name)
    elif is_glob(name):
        matched = False
        for match in sorted(glob.glob(name, recursive=recursive)):
            matched = True
            if os.path.isdir(match):
                yield from _walk(match, recursive, notes)
            else:
                yield Item(match, path=match)
        if not matched:
            yield Item(name, error="pattern matched no files")
    else:
        yield Item(name, error="no such file or directory")


def _walk(folder: str, recursive: bool, notes: list[str]) -> Iterator[Item]:
    """A folder's files as items, lazily (the shared walker: sorted, hidden skipped, a loop
    entered once, a file reached twice listed once)."""
    report = Walk()
    for path, error in iter_walk(folder, recursive, report):
        yield Item(path, error=error) if error else Item(path, path=path)
    notes += [f"{name}: symbolic-link loop, not followed again" for name in report.loops]
    if report.skipped_folders:
        notes.append(f"{folder}: {report.skipped_folders} sub-folder(s) not read (use `recursive`)")
    notes += [f"{name}: empty folder" for name in report.empty]
