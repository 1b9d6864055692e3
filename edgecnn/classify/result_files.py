"""Where results go: CSV / JSON-lines files (flushed per row, resumable) and the terminal table.

The file schema is stable for scripting: ``path,status,label,score``, then ``label_2,score_2``
up to top-k, then ``error`` and the per-stage milliseconds. JSON lines carry the same keys.
File names are written byte-exact (``surrogateescape``), so non-UTF-8 names survive a round trip.
CSV cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or CR) get a
leading apostrophe (:func:`~edgecnn.classify.result_resume.protect_cell`); JSON lines are exact.
JSON lines are always valid JSON: a number that is not finite is written as null.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no advisory lock
    fcntl = None  # type: ignore[assignment]

from edgecnn.classify.result_resume import protect_cell, read_done
from edgecnn.errors import EdgecnnError
from edgecnn.printable import print_line, printable
from edgecnn.runtime.prediction import STAGES, Prediction
from edgecnn.user_files import check_output_path

FORMATS = ("csv", "jsonl")
_ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}


def columns(top_k: int) -> list[str]:
    """The output columns for ``top_k`` labels per row."""
    extra = [f"{name}_{i}" for i in range(2, top_k + 1) for name in ("label", "score")]
    return ["path", "status", "label", "score", *extra, "error", *(f"{s}_ms" for s in STAGES)]


def record(prediction: Prediction, top_k: int) -> dict[str, Any]:
    """One output row as a dict keyed by :func:`columns` (None for empty cells)."""
    row: dict[str, Any] = {"path": prediction.source, "status": "ok" if prediction.ok else "error"}
    for i in range(top_k):
        label, score = prediction.top[i] if i < len(prediction.top) else (None, None)
        suffix = "" if i == 0 else f"_{i + 1}"
        row[f"label{suffix}"] = label
        row[f"score{suffix}"] = _number(score, 6)
    row["error"] = prediction.error
    for stage in STAGES:
        value = prediction.timings.get(stage)
        row[f"{stage}_ms"] = _number(value, 3)
    return row


def _number(value: float | None, digits: int) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def check_writable(path: str, what: str) -> None:
    """Fail before the run starts when ``path`` cannot be written (``-``: standard output):
    :func:`edgecnn.user_files.check_output_path` under the name its callers know."""
    check_output_path(path, what, stdout=True)


def format_for(path: str, explicit: str | None) -> str:
    """The file format: ``explicit`` if given, else from the extension (``-`` means CSV)."""
    if explicit:
        return explicit
    lowered = path.lower()
    if lowered.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lowered.endswith(".csv") or path == "-":
        return "csv"
    raise EdgecnnError(f"{path}: cannot tell the format from the extension; use `format` csv|jsonl")


class OutputError(EdgecnnError):
    """Writing the results failed (disk full, file too large, device gone): rows written
    before stay whole."""


def check_not_an_input(path: str, sources: Iterable[str | None]) -> None:
    """Refuse ``-o`` naming one of the inputs, before anything is written (it would be
    overwritten while being read)."""
    if path == "-":
        return
    try:
        out = os.stat(path)
    except OSError:
        return  # not there yet, so not an input
    for source in sources:
        if source is None:
            continue
        try:
            st = os.stat(source)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino):
            raise EdgecnnError(
                f"{path}: is one of the inputs ({source}); write the results to another file"
            )


def _lock(fd: int, path: str) -> None:
    """An advisory lock held while the file is open: a second writer is refused at once."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise EdgecnnError(
            f"{path}: another edgecnn run is writing this file; refused "
            "(wait for it to finish, or choose another output)"
        ) from None


class ResultWriter:
    """Writes one row per prediction to a CSV or JSON-lines file (or stdout), each row in one
    unbuffered write. The file is locked while open; with ``append`` (resume) it is first
    checked to be an edgecnn results file with the same columns (:attr:`done` then holds the
    identities of the inputs already there) and a half-written last row is cut. A write that
    fails (disk full) cuts its partial row and raises :class:`OutputError`.

    ``extra``: columns after :func:`columns` (a distributed run adds ``model_sha256``, ``node``,
    ``provider``).
    """

    def __init__(
        self,
        path: str,
        fmt: str,
        top_k: int,
        append: bool = False,
        extra: tuple[str, ...] = (),
    ) -> None:
        if fmt not in FORMATS:
            raise EdgecnnError(f"unknown output format {fmt!r}; use csv or jsonl")
        self.path, self.fmt, self.top_k = path, fmt, top_k
        self.columns = [*columns(top_k), *extra]
        self.done: set[str] = set()
        self.rows = 0
        self._fd = -1 if path == "-" else self._open(path, append)
        self._good = 0 if path == "-" else _tell(self._fd)
        if fmt == "csv" and (path == "-" or self._good == 0):
            self._emit(self.columns)

    def _open(self, path: str, append: bool) -> int:
        check_output_path(path)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags, 0o666)
        except OSError as exc:
            raise EdgecnnError(f"{path}: cannot write: {exc.strerror or exc}") from exc
        try:
            os.set_blocking(fd, True)
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
            if regular:
                _lock(fd, path)
            if append:
                if not regular:
                    raise EdgecnnError(f"{path}: not a regular file; cannot resume into it")
                self._resume(fd, path)
            elif regular:
                os.ftruncate(fd, 0)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _resume(self, fd: int, path: str) -> None:
        size = os.fstat(fd).st_size
        chunks = []
        while sum(map(len, chunks)) < size:
            chunk = os.read(fd, 1 << 24)
            if not chunk:
                break
            chunks.append(chunk)
        data = b"".join(chunks)
        self.done, keep = read_done(path, data, self.fmt, self.columns)
        if keep != len(data):
            os.ftruncate(fd, keep)  # the half-written last row of an interrupted run
        os.lseek(fd, keep, os.SEEK_SET)

    def _emit(self, cells: list[Any]) -> None:
        if self.fmt == "csv":
            buffer = io.StringIO(newline="")
            csv.writer(buffer).writerow(cells)
            text = buffer.getvalue()
        else:
            values = {key: _finite(value) for key, value in cells}
            text = json.dumps(values, ensure_ascii=False, allow_nan=False) + "\n"
        data = text.encode("utf-8", "surrogateescape")
        try:
            if self.path == "-":
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            else:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self._cut()
            raise OutputError(
                f"{'stdout' if self.path == '-' else self.path}: cannot write: "
                f"{exc.strerror or exc}"
            ) from exc
        self._good += len(data)

    def _cut(self) -> None:
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):  # a regular file: drop the partial row
            if stat.S_ISREG(os.fstat(self._fd).st_mode):
                os.ftruncate(self._fd, self._good)

    def write(self, prediction: Prediction) -> None:
        """Append one row in one write, so an interrupted run keeps every row written so far."""
        self.write_row(record(prediction, self.top_k))

    def write_row(self, row: dict[str, Any], flush: bool = True) -> None:
        """Append one row given as a dict keyed by :attr:`columns` (missing keys: empty).
        Every row is one unbuffered write (``flush`` is kept for callers; it changes nothing)."""
        if self.fmt == "csv":
            self._emit([_csv_cell(row.get(c)) for c in self.columns])
        else:
            self._emit([(c, row.get(c)) for c in self.columns])
        self.rows += 1

    def close(self) -> None:
        """Close the file (stdout stays open)."""
        if self.path != "-" and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _tell(fd: int) -> int:
    try:
        return os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:  # a pipe or terminal
        return 0


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such a number is written as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    return protect_cell(value) if isinstance(value, str) else value


def display(name: str) -> str:
    """A file name or label safe to print on any terminal (see :func:`printable`)."""
    return printable(name)


class ConsoleTable:
    """Prints each prediction as an aligned line: top-k ``label score`` columns, then the path."""

    def __init__(
        self,
        labels: tuple[str, ...],
        top_k: int,
        echo: Callable[[str], None] = print_line,
    ) -> None:
        self.width = max(len(display(label)) for label in labels)
        self.top_k = top_k
        self.echo = echo

    def lines(self, prediction: Prediction) -> Iterator[str]:
        """The text line(s) for one prediction (labels, names and errors escaped)."""
        cell = self.width + 7
        if prediction.ok:
            cells = [
                f"{display(label):<{self.width}} {score:5.3f}" for label, score in prediction.top
            ]
            yield "  ".join(f"{c:<{cell}}" for c in cells) + "  " + display(prediction.source)
        else:
            gap = " " * ((cell + 2) * self.top_k - len("ERROR") - 2)
            error = display(prediction.error or "")
            yield f"ERROR{gap}  {display(prediction.source)}: {error}"

    def write(self, prediction: Prediction) -> None:
        """Print one prediction through ``echo`` (stdout unless the caller gave another)."""
        for line in self.lines(prediction):
            self.echo(line)
