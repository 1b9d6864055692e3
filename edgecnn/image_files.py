"""What counts as an image file (by content), and the one folder walker.

Every part that looks for images in folders uses these: training datasets and calibration /
verification folders (:mod:`edgecnn.data.datasets`), classify's input discovery and live's image
folders. A file is an image when it starts with the signature of a still-image format OpenCV
decodes, whatever its name; the walker lists each file once, in sorted order, skips hidden
entries and never follows a symbolic-link loop (a folder already walked is not entered again,
and a symbolic link to a file already listed is not listed again).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgecnn.user_files import UnusableFile, check_regular, read_head

#: Characters that make an argument a glob pattern (classify, live).
GLOB_CHARS = frozenset("*?[")
#: File signatures of the still-image formats OpenCV decodes (what ``cv2.haveImageReader``
#: looks for), checked in Python so that OpenCV never sees the path.
IMAGE_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"BM",
    b"II*\x00",  # TIFF, little- and big-endian, BigTIFF
    b"MM\x00*",
    b"II+\x00",
    b"MM\x00+",
    b"GIF87a",
    b"GIF89a",
    b"\x00\x00\x00\x0cjP  \r\n\x87\n",  # JPEG 2000 (JP2), then its raw codestream
    b"\xff\x4f\xff\x51",
    b"v/1\x01",  # OpenEXR
    b"#?RADIANCE",
    b"#?RGBE",
    b"\x59\xa6\x6a\x95",  # Sun raster
)
_PNM = re.compile(rb"^P[1-7FfH][\s]")  # PBM / PGM / PPM / PAM / PFM
#: Bytes of a file's start that :func:`looks_like_image` needs.
HEAD_BYTES = 16
#: Why a file was left out of a dataset or an image folder.
NOT_AN_IMAGE = "not an image (its content matches no image format)"
_HIDDEN = ("Thumbs.db", "desktop.ini", "__MACOSX")


def is_glob(text: str) -> bool:
    """True when ``text`` holds a glob character (``*``, ``?``, ``[``)."""
    return bool(GLOB_CHARS & set(text))


def is_hidden(name: str) -> bool:
    """Dot files and the litter of file managers, never inputs."""
    return name.startswith(".") or name in _HIDDEN


def looks_like_image(head: bytes) -> bool:
    """True when ``head`` (a file's first bytes) starts like a still image OpenCV decodes."""
    webp = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    return webp or head.startswith(IMAGE_MAGIC) or _PNM.match(head) is not None


def is_image(path: str | Path) -> bool:
    """True when the file's content is an image (read in Python, never waits on a FIFO);
    False for anything else, including what is not a readable regular file."""
    return looks_like_image(read_head(path, HEAD_BYTES))


def is_image_or_unreadable(path: str | Path) -> bool:
    """What a dataset keeps: an image by content, or a file that is not a readable, non-empty
    regular file (a FIFO, a device, a dangling link): the loader then says why it is skipped,
    so nothing is dropped silently. Readable files of other content are left out."""
    try:
        check_regular(path)
    except UnusableFile:
        return True
    return is_image(path)


@dataclass
class Walk:
    """What :func:`walk` found under one folder."""

    files: list[Path] = field(default_factory=list)  #: each file once, sorted per folder
    skipped_folders: int = 0  #: sub-folders not entered (not recursive)
    loops: list[str] = field(default_factory=list)  #: folders not followed again
    errors: list[tuple[str, str]] = field(default_factory=list)  #: (folder, why) unreadable
    empty: list[str] = field(default_factory=list)  #: folders with nothing in them


def walk(folder: str | Path, recursive: bool = True) -> Walk:
    """Every non-hidden file under ``folder`` (sub-folders too when ``recursive``), each once.

    Folders are identified by device and inode, so a symbolic-link loop is entered once; a
    symbolic link to a file listed before is skipped (hard links, distinct names, are kept).
    """
    result = Walk()
    for path, error in iter_walk(folder, recursive, result):
        if error is None:
            result.files.append(Path(path))
        else:
            result.errors.append((path, error))
    return result


def iter_walk(
    folder: str | Path, recursive: bool, report: Walk
) -> Iterator[tuple[str, str | None]]:
    """:func:`walk` lazily, one folder listing at a time: ``(file, None)`` for each file and
    ``(folder, why)`` for a folder that cannot be listed, in order; loops, empty folders and
    sub-folders not entered are added to ``report``."""
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    yield from _walk(str(folder), recursive, report, seen_dirs, seen_files, top=True)


def _walk(
    folder: str,
    recursive: bool,
    report: Walk,
    seen_dirs: set[tuple[int, int]],
    seen_files: set[tuple[int, int]],
    top: bool = False,
) -> Iterator[tuple[str, str | None]]:
    try:
        st = os.stat(folder)
        with os.scandir(folder) as entries:
            listed = sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        yield folder, f"cannot list folder: {exc.strerror or exc}"
        return
    if (st.st_dev, st.st_ino) in seen_dirs:
        report.loops.append(folder)
        return
    seen_dirs.add((st.st_dev, st.st_ino))
    subfolders, files = [], 0
    for entry in listed:
        if is_hidden(entry.name):
            continue
        path = os.path.join(folder, entry.name)
        try:
            is_dir = entry.is_dir()  # follows links; a looping link is not a dir
        except OSError:
            is_dir = False
        if is_dir:
            subfolders.append(path)
            continue
        files += 1
        key = _identity(entry)
        if key is not None and key in seen_files and entry.is_symlink():
            continue  # a link to a file listed already (hard links are distinct names: kept)
        if key is not None:
            seen_files.add(key)
        yield path, None
    if not recursive:
        report.skipped_folders += len(subfolders) if top else 0
    else:
        for sub in subfolders:
            yield from _walk(sub, recursive, report, seen_dirs, seen_files)
    if not files and not subfolders:
        report.empty.append(folder)


def _identity(entry: os.DirEntry[str]) -> tuple[int, int] | None:
    """(device, inode) of what the entry points to; None for a dangling or looping link."""
    try:
        st = entry.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino
