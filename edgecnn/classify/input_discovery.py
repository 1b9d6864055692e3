"""Input discovery for ``classify``: files, folders and glob patterns -> an ordered item list.

Every argument the user gave shows up: a missing path or a pattern that matches nothing
becomes an item carrying its error, so nothing is dropped silently. Folders are walked in
sorted order; images are recognised by content later (the decoder), not by extension, so every
non-hidden file in a folder is an input. Symbolic-link loops are detected, never followed twice.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
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
        name = os.fsdecode(raw)
        if os.path.isdir(name):
            _walk(name, recursive, result, visited=set())
        elif os.path.lexists(name):
            result.items.append(Item(name, path=name))
        elif _GLOB_CHARS & set(name):
            matches = sorted(glob.glob(name, recursive=recursive))
            if not matches:
                result.items.append(Item(name, error="pattern matched no files"))
            for match in matches:
                if os.path.isdir(match):
                    _walk(match, recursive, result, visited=set())
                else:
                    result.items.append(Item(match, path=match))
        else:
            result.items.append(Item(name, error="no such file or directory"))
    return result


def _walk(folder: str, recursive: bool, result: Scan, visited: set[tuple[int, int]]) -> None:
    try:
        st = os.stat(folder)
    except OSError as exc:
        result.items.append(Item(folder, error=f"cannot open folder: {exc.strerror or exc}"))
        return
    key = (st.st_dev, st.st_ino)
    if key in visited:
        result.notes.append(f"{folder}: symbolic-link loop, not followed again")
        return
    visited.add(key)
    try:
        with os.scandir(folder) as entries:
            listed = sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        result.items.append(Item(folder, error=f"cannot list folder: {exc.strerror or exc}"))
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
            result.items.append(Item(path, path=path))
    if recursive:
        for sub in subfolders:
            _walk(sub, recursive, result, visited)
    elif subfolders:
        result.notes.append(f"{folder}: {len(subfolders)} sub-folder(s) not read (use `recursive`)")
    if not files and not subfolders:
        result.notes.append(f"{folder}: empty folder")
