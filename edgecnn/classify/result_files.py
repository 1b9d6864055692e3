"""Where results go: CSV / JSON-lines files (flushed per row, resumable) and the terminal table.

The file schema is stable for scripting: ``path,status,label,score``, then ``label_2,score_2``
up to top-k, then ``error`` and the per-stage milliseconds. JSON lines carry the same keys.
File names are written byte-exact (``surrogateescape``), so non-UTF-8 names survive a round trip.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

import click

from edgecnn.errors import EdgecnnError
from edgecnn.printable import printable
from edgecnn.runtime.prediction import STAGES, Prediction

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
        row[f"score{suffix}"] = None if score is None else round(score, 6)
    row["error"] = prediction.error
    for stage in STAGES:
        value = prediction.timings.get(stage)
        row[f"{stage}_ms"] = None if value is None else round(value, 3)
    return row


def check_writable(path: str, what: str) -> None:
    """Fail before the run starts when ``path`` cannot be created (missing folder, a folder)."""
    if path == "-":
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise EdgecnnError(f"{what} {path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        raise EdgecnnError(f"{what} {path}: is a folder, not a file name")
    if not os.access(folder, os.W_OK):
        raise EdgecnnError(f"{what} {path}: the folder {folder} is not writable")


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


def already_done(path: str, fmt: str, top_k: int) -> set[str]:
    """Paths already in an output file (for ``--resume``). A half-written last line left by an
    interrupted run is cut off so that input is classified again."""
    if not os.path.exists(path):
        return set()
    _drop_partial_last_line(path)
    with open(path, newline="", **_ENCODING) as fh:
        if fmt == "csv":
            reader = csv.DictReader(fh)
            if reader.fieldnames and reader.fieldnames != columns(top_k):
                raise EdgecnnError(
                    f"{path}: existing columns do not match `top_k` {top_k}; "
                    "resume with the same `top_k` or write a new file"
                )
            return {row["path"] for row in reader}
        done = set()
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    done.add(json.loads(line)["path"])
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise EdgecnnError(f"{path}:{number}: not a results line ({exc})") from exc
        return done


def _drop_partial_last_line(path: str) -> None:
    with open(path, "rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


class ResultWriter:
    """Writes one row per prediction to a CSV or JSON-lines file (or stdout), flushing each.

    ``extra``: columns after :func:`columns` (a distributed run adds ``model_sha256``, ``node``).
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
        self._stdout = path == "-"
        if self._stdout:
            self._fh: IO[str] = io.TextIOWrapper(sys.stdout.buffer, newline="", **_ENCODING)
        else:
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise EdgecnnError(f"{path}: the folder {folder} does not exist")
            try:
                self._fh = open(path, "a" if append else "w", newline="", **_ENCODING)  # noqa: SIM115
            except OSError as exc:
                raise EdgecnnError(f"{path}: cannot write: {exc.strerror or exc}") from exc
        self._csv = csv.writer(self._fh) if fmt == "csv" else None
        fresh = self._stdout or not append or self._fh.tell() == 0
        if self._csv is not None and fresh:
            self._csv.writerow(self.columns)
            self._fh.flush()

    def write(self, prediction: Prediction) -> None:
        """Append one row and flush, so an interrupted run keeps everything written so far."""
        self.write_row(record(prediction, self.top_k))

    def write_row(self, row: dict[str, Any], flush: bool = True) -> None:
        """Append one row given as a dict keyed by :attr:`columns` (missing keys: empty)."""
        if self._csv is not None:
            self._csv.writerow(["" if row.get(c) is None else row[c] for c in self.columns])
        else:
            values = {c: row.get(c) for c in self.columns}
            self._fh.write(json.dumps(values, ensure_ascii=False) + "\n")
        if flush:
            self._fh.flush()

    def close(self) -> None:
        """Flush and close (stdout is detached, not closed)."""
        if self._stdout:
            self._fh.flush()
            self._fh.detach()
        else:
            self._fh.close()


def display(name: str) -> str:
    """A file name or label safe to print on any terminal (see :func:`printable`)."""
    return printable(name)


class ConsoleTable:
    """Prints each prediction as an aligned line: top-k ``label score`` columns, then the path."""

    def __init__(self, labels: tuple[str, ...], top_k: int) -> None:
        self.width = max(len(label) for label in labels)
        self.top_k = top_k

    def lines(self, prediction: Prediction) -> Iterator[str]:
        """The text line(s) for one prediction."""
        cell = self.width + 7
        if prediction.ok:
            cells = [f"{label:<{self.width}} {score:5.3f}" for label, score in prediction.top]
            yield "  ".join(f"{c:<{cell}}" for c in cells) + "  " + display(prediction.source)
        else:
            gap = " " * ((cell + 2) * self.top_k - len("ERROR") - 2)
            yield f"ERROR{gap}  {display(prediction.source)}: {prediction.error}"

    def write(self, prediction: Prediction) -> None:
        """Print one prediction to stdout."""
        for line in self.lines(prediction):
            click.echo(line)
