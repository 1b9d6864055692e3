"""Report files (JSON, Markdown, PNG): one JSON layout, and a failed write is an error naming the
file, never a traceback after minutes of work.

Callers check their output paths *before* the work with
:func:`edgecnn.user_files.check_output_path`;
:func:`writing` catches what can still go wrong at the end (disk full, folder removed meanwhile).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError


def to_json(data: Any) -> str:
    """Pretty JSON text with a trailing newline; non-ASCII text kept readable."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


@contextlib.contextmanager
def writing(path: str | Path, what: str) -> Iterator[None]:
    """Turn an OSError raised inside the block into an :class:`EdgecnnError` naming ``path``."""
    try:
        yield
    except OSError as exc:
        raise EdgecnnError(f"{what} {path}: cannot write ({exc.strerror or exc})") from exc


def write_text(path: str | Path, text: str, what: str = "output") -> None:
    """Write UTF-8 text. Undecodable file names kept with ``surrogateescape`` come out as
    ``\\udcXX`` escapes (valid JSON), so one odd file name never loses a report."""
    with writing(path, what), open(path, "w", encoding="utf-8", errors="backslashreplace") as fh:
        fh.write(text)


def write_json(path: str | Path, data: Any, what: str = "JSON report") -> None:
    """Write ``data`` as :func:`to_json` text."""
    write_text(path, to_json(data), what)
