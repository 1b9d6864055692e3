"""Resuming into a results file: is it edgecnn's own, which inputs it holds, where it is whole.

``--resume`` changes nothing in a file before it is known to be an edgecnn results file with the
same columns (a user's CSV, JSON lines or a PNG named ``.csv`` is left byte for byte as it was).
Inputs are matched on a normalized identity, :func:`identity`: the absolute, normalized path
(``a.png``, ``./a.png`` and ``$PWD/a.png`` are one input; symbolic links are not resolved, and
relative names are resolved against the current folder). A half-written last row is cut whole,
also when its quoted path holds a newline.
"""

from __future__ import annotations

import csv
import io
import json
import os

from edgecnn.errors import EdgecnnError

#: Cells starting with one of these are formulas to a spreadsheet: written with a leading
#: apostrophe (and a cell that starts with an apostrophe gets one more, so reading is exact).
FORMULA_START = frozenset("=+-@\t\r")


def protect_cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text, never runs (``=HYPERLINK(...)`` -> ``'=HYP...``)."""
    if text and (text[0] in FORMULA_START or text[0] == "'"):
        return "'" + text
    return text


def unprotect_cell(text: str) -> str:
    """The exact text :func:`protect_cell` protected."""
    if len(text) > 1 and text[0] == "'" and (text[1] in FORMULA_START or text[1] == "'"):
        return text[1:]
    return text


def identity(source: str) -> str:
    """The key under which ``--resume`` recognises an input (absolute, normalized path)."""
    return os.path.normpath(os.path.abspath(source))


def complete_length(data: bytes, fmt: str) -> int:
    """Bytes of ``data`` up to the end of its last complete row.

    CSV rows end at a newline outside quotes (a quoted path may hold newlines; a doubled quote
    inside a quoted field toggles twice, so counting quotes is exact). JSON lines never hold a
    raw newline inside a record.
    """
    if fmt != "csv":
        return data.rfind(b"\n") + 1
    end = 0
    offset = 0
    for index, segment in enumerate(data.split(b'"')):
        if index % 2 == 0:  # outside quotes
            newline = segment.rfind(b"\n")
            if newline != -1:
                end = offset + newline + 1
        offset += len(segment) + 1
    return end


def _refuse(path: str, why: str) -> EdgecnnError:
    return EdgecnnError(
        f"{path}: {why}; not resuming into it (the file is left unchanged): write to a new file"
    )


def read_done(path: str, data: bytes, fmt: str, header: list[str]) -> tuple[set[str], int]:
    """(identities of the inputs in ``data``, bytes to keep) for the file at ``path``.

    Raises :class:`EdgecnnError` (changing nothing) unless ``data`` is an edgecnn results file
    of format ``fmt`` with exactly the columns ``header``.
    """
    keep = complete_length(data, fmt)
    first_end = data.find(b"\n")
    if first_end == -1 or keep == 0:  # no complete line: empty, or a header cut short
        expected = (",".join(header) if fmt == "csv" else '{"path": ').encode()
        if expected.startswith(data.rstrip(b"\r")) or data.startswith(expected):
            return set(), 0
        raise _refuse(path, "not an edgecnn results file")
    text = data[:keep].decode("utf-8", "surrogateescape")
    if fmt == "csv":
        rows = csv.reader(io.StringIO(text, newline=""))
        found = next(rows, [])
        if found != header:
            if found[:4] == header[:4]:
                raise _refuse(path, "its columns are for another `top_k`")
            raise _refuse(path, "not an edgecnn CSV results file (the header differs)")
        return {identity(unprotect_cell(row[0])) for row in rows if row}, keep
    done = set()
    for number, line in enumerate(text.splitlines(), 1):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("path"), str):
            raise _refuse(path, f"line {number} is not an edgecnn result")
        if number == 1 and list(row) != header:
            same = list(row)[:4] == header[:4]
            raise _refuse(
                path,
                "its columns are for another `top_k`"
                if same
                else "not an edgecnn JSON-lines results file (the keys differ)",
            )
        done.add(identity(row["path"]))
    return done, keep
