"""Text safe to print on a terminal: file names and labels come from anyone.

A label or file name holding an escape sequence (``\\x1b]0;...``), a carriage return or a
newline could rewrite what an operator reads; bytes that are not UTF-8 would crash the print.
:func:`printable` shows all of them escaped (``\\x1b``, ``\\n``, ``\\xff``), leaving everything
else, non-ASCII letters included, as it is. Files (CSV, JSON lines) keep the exact text.
"""

from __future__ import annotations

import re
import sys

# C0 controls, DEL, C1 controls, and the Unicode line / paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


def printable(text: str) -> str:
    """``text`` with control characters and undecodable bytes shown as escapes (one line)."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROL.sub(_escape, text)


def printable_lines(text: str) -> str:
    """Like :func:`printable`, keeping the line breaks of a multi-line message."""
    return "\n".join(printable(line) for line in text.split("\n"))


def print_line(line: str) -> None:
    """Write one line to the current ``sys.stdout`` and flush it (the library's console writer;
    callers that want another stream pass their own callable)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
