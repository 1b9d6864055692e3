"""Files a user names (images, labels, models, ``.keras``, folders' files): checked, then read
with a size bound.

A FIFO, a socket or a link to ``/dev/zero`` among the inputs must not hang a run or fill the
memory: every file edgecnn opens because a user named it goes through here. :func:`open_regular`
opens without blocking (``O_NONBLOCK``: opening a FIFO for reading would otherwise wait for a
writer), checks on the open descriptor that it is a regular file (no race between the check and
the read), and :func:`read_bounded` never reads more than its limit. :func:`check_regular` is for
files handed by path to a library (onnxruntime, Keras): the same check without reading.

:func:`check_output_path` is the one check of a file a run will *write* (classify / scale result
files, live's video and JSON lines, bench and eval reports, the exported model), made before the
slow work so a typo costs a second, not the run.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from edgecnn.errors import EdgecnnError
from edgecnn.printable import printable

#: Bounds on what edgecnn reads from a user-named file (bytes).
IMAGE_LIMIT = 512 * 1024 * 1024
TEXT_LIMIT = 16 * 1024 * 1024
#: An ONNX file is one protobuf message, which cannot exceed 2 GiB.
MODEL_LIMIT = 2 * 1024 * 1024 * 1024


class UnusableFile(EdgecnnError):
    """A user-named file that is not a regular file, is too large, or cannot be opened."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "is a pipe (FIFO), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    return "not a regular file"


def _check(path: str, st: os.stat_result, limit: int | None, empty_ok: bool) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnusableFile(path, _kind(st.st_mode))
    if not empty_ok and st.st_size == 0:
        raise UnusableFile(path, "empty file (0 bytes)")
    if limit is not None and st.st_size > limit:
        raise UnusableFile(path, f"file is {st.st_size:,} bytes, over the {limit:,} limit")


def _oserror(path: str, exc: OSError, verb: str) -> UnusableFile:
    if isinstance(exc, FileNotFoundError):
        return UnusableFile(path, "no such file (missing or vanished)")
    return UnusableFile(path, f"cannot {verb}: {exc.strerror or exc}")


def check_regular(
    path: str | Path, limit: int | None = None, *, empty_ok: bool = False
) -> os.stat_result:
    """Stat ``path`` (following links) and refuse anything but a regular file within ``limit``."""
    name = os.fsdecode(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _oserror(name, exc, "access") from None
    _check(name, st, limit, empty_ok)
    return st


def open_regular(path: str | Path, limit: int | None = None, *, empty_ok: bool = False) -> BinaryIO:
    """Open a regular file for reading without ever blocking on a FIFO or a device."""
    name = os.fsdecode(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise UnusableFile(name, "is a directory, not a file") from None
    except OSError as exc:
        raise _oserror(name, exc, "access") from None
    try:
        _check(name, os.fstat(fd), limit, empty_ok)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_bounded(path: str | Path, limit: int, *, empty_ok: bool = False) -> bytes:
    """The whole content of a regular file of at most ``limit`` bytes (also if it grows)."""
    name = os.fsdecode(path)
    with open_regular(path, limit, empty_ok=empty_ok) as fh:
        try:
            # read(limit + 1) would allocate the whole limit first (~0.1 ms for 512 MB): ask for
            # the size fstat gives, then for the rest only if the file grew meanwhile
            size = os.fstat(fh.fileno()).st_size
            data = fh.read(min(size, limit) + 1)
            if len(data) > size and len(data) <= limit:
                data += fh.read(limit + 1 - len(data))
        except OSError as exc:
            raise _oserror(name, exc, "read") from None
    if len(data) > limit:
        raise UnusableFile(name, f"file grew over the {limit:,}-byte limit while being read")
    if not data and not empty_ok:
        raise UnusableFile(name, "empty file (0 bytes)")
    return data


def read_head(path: str | Path, size: int) -> bytes:
    """The first ``size`` bytes of a regular file (b"" when it is unusable: callers probe)."""
    try:
        with open_regular(path, empty_ok=True) as fh:
            return fh.read(size)
    except (UnusableFile, OSError):
        return b""


def read_text(path: str | Path, limit: int = TEXT_LIMIT) -> str:
    """A UTF-8 text file of at most ``limit`` bytes; binary content is refused, not decoded."""
    name = os.fsdecode(path)
    data = read_bounded(path, limit, empty_ok=True)
    if b"\x00" in data:
        raise UnusableFile(name, "is a binary file (holds NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnusableFile(name, f"is not UTF-8 text (byte {exc.start})") from None


def check_output_path(
    path: str | os.PathLike[str],
    what: str = "",
    *,
    stdout: bool = False,
    replaced: bool = False,
    example: str = "",
    error: type[EdgecnnError] = EdgecnnError,
) -> None:
    """Refuse an output path that cannot be written: a folder, a missing folder, no permission.

    An existing file must be writable; a new one (or one ``replaced`` through a temporary sibling
    and a rename) needs a writable folder. ``stdout``: ``-`` names standard output (nothing to
    check). ``what`` starts the message (the API parameter, e.g. ``"`save`"``), ``example`` is a
    file name suggested for a folder, ``error`` the exception class raised.
    """
    text = os.fspath(path)
    if stdout and text == "-":
        return
    name = f"{what} {printable(text)}" if what else printable(text)
    folder = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text):
        hint = f" such as {example}" if example else ""
        raise error(f"{name}: is a folder; give a file name{hint}")
    if not os.path.isdir(folder):
        raise error(f"{name}: the folder {printable(folder)} does not exist (create it first)")
    if not replaced and os.path.exists(text):
        if not os.access(text, os.W_OK):
            raise error(f"{name}: the file is not writable")
    elif not os.access(folder, os.W_OK):
        raise error(f"{name}: the folder {printable(folder)} is not writable")
