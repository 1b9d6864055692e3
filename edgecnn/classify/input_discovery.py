"""Input discovery for ``classify``: files, folders and glob patterns -> an ordered item list.

Every argument the user gave shows up: a missing path or a pattern that matches nothing
becomes an item carrying its error, so nothing is dropped silently. Folders are walked in
sorted order; images are recognised by content later (the decoder), not by extension, so every
non-hidden file in a folder is an input. Symbolic-link loops are detected, never followed twice.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

_GLOB_CHARS = frozenset("*?[")


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
        yield from _walk(name, recursive, notes, visited=set())
    elif os.path.lexists(name):
        yield Item(name, path=name)
    elif _GLOB_CHARS & set(name):
        matched = False
        for match in sorted(glob.glob(name, recursive=recursive)):
            matched = True
            if os.path.isdir(match):
                yield from _walk(match, recursive, notes, visited=set())
            else:
                yield Item(match, path=match)
        if not matched:
            yield Item(name, error="pattern matched no files")
    else:
        yield Item(name, error="no such file or directory")


def _walk(
    folder: str, recursive: bool, notes: list[str], visited: set[tuple[int, int]]
) -> Iterator[Item]:
    try:
        st = os.stat(folder)
    except OSError as exc:
        yield Item(folder, error=f"cannot open folder: {exc.strerror or exc}")
        return
    key = (st.st_dev, st.st_ino)
    if key in visited:
        notes.append(f"{folder}: symbolic-link loop, not followed again")
        return
    visited.add(key)
    try:
        with os.scandir(folder) as entries:
            listed = sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        yield Item(folder, error=f"cannot list folder: {exc.strerror or exc}")
        return
    files = 0
    subfolders = []
    for entry in listed:
        if entry.name.startswith("."):
            continue
        path = os.path.join(folder, entry.name)
        try:
            is_dir = entry.is_dir()  # follows links; a looping link is not a dir
        except OSError:
            is_dir = False
        if is_dir:
            subfolders.append(path)
        else:
            files += 1
            yield Item(path, path=path)
    if recursive:
        for sub in subfolders:
            yield from _walk(sub, recursive, notes, visited)
    elif subfolders:
        notes.append(f"{folder}: {len(subfolders)} sub-folder(s) not read (use `recursive`)")
    if not files and not subfolders:
        notes.append(f"{folder}: empty folder")
