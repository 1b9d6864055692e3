"""Inputs of a distributed run: listed lazily inside Ray tasks, read as bytes from any filesystem.

Local folders and globs are listed by :func:`edgecnn.classify.input_discovery.iter_source`, the
very walk local ``classify`` uses (same order, same error rows for missing paths and empty
patterns). URIs (``s3://``, ``gs://``, ``file://``, anything pyarrow's filesystems open) are
listed with pyarrow one directory at a time. Either way items stream out in chunks, so millions
of paths never sit in one list on the driver.
"""

from __future__ import annotations

import fnmatch
import glob as _glob
import itertools
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

from edgecnn.classify.input_discovery import Item, iter_source
from edgecnn.errors import ImageError
from edgecnn.preprocess import MAX_FILE_BYTES

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB_CHARS = frozenset("*?[")
#: Columns of the listing stage: display name, what to read (None for an error row), the error.
LISTING_COLUMNS = ("path", "file", "error")


def is_uri(source: str) -> bool:
    """True for ``scheme://...`` sources (read through pyarrow's filesystems)."""
    return bool(_URI.match(source))


def iter_inputs(source: str, recursive: bool, notes: list[str]) -> Iterator[Item]:
    """The items of one source argument, lazily; notes (sub-folders skipped, ...) appended."""
    if is_uri(source):
        yield from _iter_uri(source, recursive, notes)
    else:
        yield from iter_source(source, recursive, notes)


def _filesystem(uri: str) -> tuple[Any, str, str]:
    """(pyarrow filesystem, path inside it, prefix that turns such a path back into a URI)."""
    from pyarrow import fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(uri)
    scheme = uri.split("://", 1)[0].lower()
    prefix = "file://" if scheme == "file" else f"{scheme}://"
    return filesystem, path, prefix


def _iter_uri(uri: str, recursive: bool, notes: list[str]) -> Iterator[Item]:
    from pyarrow import fs as pafs

    try:
        filesystem, path, prefix = _filesystem(uri)
        info = filesystem.get_file_info(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError / ValueError
        yield Item(uri, error=f"cannot open: {exc}")
        return
    if info.type == pafs.FileType.Directory:
        yield from _walk_uri(filesystem, path, prefix, recursive, notes)
    elif info.type == pafs.FileType.File:
        yield Item(uri, path=uri)
    elif _GLOB_CHARS & set(path.rsplit("/", 1)[-1]):
        yield from _glob_uri(filesystem, path, prefix, uri)
    else:
        yield Item(uri, error="no such file or directory")


def _listing(filesystem: Any, folder: str) -> list[Any]:
    from pyarrow import fs as pafs

    selector = pafs.FileSelector(folder, recursive=False)
    return sorted(filesystem.get_file_info(selector), key=lambda info: info.base_name)


def _walk_uri(
    filesystem: Any, folder: str, prefix: str, recursive: bool, notes: list[str]
) -> Iterator[Item]:
    from pyarrow import fs as pafs

    try:
        listed = _listing(filesystem, folder)
    except Exception as exc:
        yield Item(prefix + folder, error=f"cannot list folder: {exc}")
        return
    files = 0
    subfolders = []
    for info in listed:
        if info.base_name.startswith("."):
            continue
        if info.type == pafs.FileType.Directory:
            subfolders.append(info.path)
        else:
            files += 1
            yield Item(prefix + info.path, path=prefix + info.path)
    if recursive:
        for sub in subfolders:
            yield from _walk_uri(filesystem, sub, prefix, recursive, notes)
    elif subfolders:
        count = len(subfolders)
        notes.append(f"{prefix + folder}: {count} sub-folder(s) not read (use `recursive`)")
    if not files and not subfolders:
        notes.append(f"{prefix + folder}: empty folder")


def _glob_uri(filesystem: Any, path: str, prefix: str, uri: str) -> Iterator[Item]:
    """A pattern in the last path component (``s3://bucket/photos/*.jpg``)."""
    from pyarrow import fs as pafs

    folder, _, pattern = path.rpartition("/")
    try:
        listed = _listing(filesystem, folder)
    except Exception:
        listed = []
    matched = False
    for info in listed:
        if info.type == pafs.FileType.File and fnmatch.fnmatchcase(info.base_name, pattern):
            matched = True
            yield Item(prefix + info.path, path=prefix + info.path)
    if not matched:
        yield Item(uri, error="pattern matched no files")


def read_uri_bytes(uri: str) -> bytes:
    """Read one file through pyarrow's filesystems, refusing what local reading refuses."""
    from pyarrow import fs as pafs

    try:
        filesystem, path, _ = _filesystem(uri)
        info = filesystem.get_file_info(path)
    except Exception as exc:
        raise ImageError(uri, f"cannot access: {exc}") from None
    if info.type == pafs.FileType.NotFound:
        raise ImageError(uri, "no such file (missing or vanished)")
    if info.type == pafs.FileType.Directory:
        raise ImageError(uri, "is a directory, not an image file")
    if info.size == 0:
        raise ImageError(uri, "empty file (0 bytes)")
    if info.size is not None and info.size > MAX_FILE_BYTES:
        raise ImageError(uri, f"file is {info.size:,} bytes, over the {MAX_FILE_BYTES:,} limit")
    try:
        with filesystem.open_input_stream(path) as stream:
            return stream.read()
    except Exception as exc:
        raise ImageError(uri, f"cannot read: {exc}") from None


def _utf8(item: Item) -> Item:
    """Arrow strings are UTF-8: a name that is not (surrogate-escaped) becomes an error row."""
    try:
        item.source.encode("utf-8")
    except UnicodeEncodeError:
        shown = item.source.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return Item(shown, error="file name is not valid UTF-8 (rename it, or classify locally)")
    return item


def _relative_to(root: str, item: Item) -> Item:
    """An item found under ``root`` named as the user wrote it (relative), read by full path."""
    head = root.rstrip(os.sep) + os.sep
    name = item.source[len(head) :] if item.source.startswith(head) else item.source
    return Item(name, path=item.path, error=item.error)


def list_sources(
    batch: dict[str, Any],
    *,
    recursive: bool,
    chunk: int,
    root: str,
    done: list[Any] | None = None,
) -> Iterator[Any]:
    """Ray ``map_batches`` stage: source arguments -> chunks of listing rows.

    ``root``: the driver's working folder; relative sources are found under it (workers run
    elsewhere) and reported relative, as local ``classify`` reports them.

    ``done`` (``--resume``): a one-element list holding an ObjectRef of the set of paths already
    in the output; those inputs are skipped here, inside the task, never on the driver.
    """
    import pyarrow as pa

    schema = pa.schema([(name, pa.string()) for name in LISTING_COLUMNS])
    skip: set[str] | frozenset[str] = frozenset()
    if done:
        import ray

        skip = ray.get(done[0])
    for source in batch["source"]:
        notes: list[str] = []
        rows: dict[str, list[str | None]] = {name: [] for name in LISTING_COLUMNS}
        source = str(source)
        relative = not is_uri(source) and not os.path.isabs(source)
        where = os.path.join(root, source) if relative else source
        for raw in iter_inputs(where, recursive, notes):
            item = _utf8(_relative_to(root, raw) if relative else raw)
            if item.source in skip:
                continue
            rows["path"].append(item.source)
            rows["file"].append(item.path)
            rows["error"].append(item.error)
            if len(rows["path"]) >= chunk:
                yield pa.table(rows, schema=schema)
                rows = {name: [] for name in LISTING_COLUMNS}
        if rows["path"]:
            yield pa.table(rows, schema=schema)
        for note in notes:  # Ray forwards task output to the driver's terminal
            print(f"note: {note}", file=sys.stderr)


def sample_sizes(source: str, count: int = 16, folders: int = 8) -> list[int]:
    """Byte sizes of up to ``count`` files of a local source, the first found (unsorted, so no
    folder is listed whole; at most ``folders`` folders opened): a cheap look at what kind of
    images a run holds. URIs give [] (listing a bucket costs requests)."""
    if is_uri(source):
        return []
    sizes: list[int] = []
    # a glob may match millions of files: take only its first few matches
    globbed = _GLOB_CHARS & set(source)
    pending = list(itertools.islice(_glob.iglob(source), count)) if globbed else [source]
    opened = 0
    while pending and len(sizes) < count and opened < folders:
        path = pending.pop(0)
        try:
            if not os.path.isdir(path):
                sizes.append(os.path.getsize(path))
                continue
            opened += 1
            with os.scandir(path) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_file():
                        sizes.append(entry.stat().st_size)
                    elif entry.is_dir():
                        pending.append(entry.path)
                    if len(sizes) >= count:
                        break
        except OSError:
            continue  # the listing task reports it
    return sizes
