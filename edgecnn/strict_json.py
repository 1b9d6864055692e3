"""Typed reads of JSON objects that fail with one line naming the field (no raw TypeError).

The model metadata and a training run's ``config.json`` are read through :class:`Fields`:
every value is checked for its JSON type (``true`` is not a number, ``8.9`` and ``"8"`` are not
integers) and bounds before use, and the error names the file/what and the dotted field path.
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

from edgecnn.errors import EdgecnnError, ModelError

#: Largest height / width any model input may declare (a sane bound, not a hardware limit).
MAX_SIDE = 8192
#: Metadata / config texts longer than this are refused before parsing.
MAX_TEXT = 64 * 1024 * 1024

_MISSING: Any = object()
Scalar = str | int | float | bool | None


def kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def loads(text: str | bytes, what: str, error: type[EdgecnnError] = ModelError) -> Any:
    """``json.loads`` whose every failure (deep nesting, huge numbers) is one ``error`` line."""
    if len(text) > MAX_TEXT:
        raise error(f"{what} is {len(text)} characters long, more than {MAX_TEXT}")
    try:
        return json.loads(text)
    except RecursionError:
        raise error(f"{what} is nested too deeply to be valid") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError, int too long, bad bytes
        raise error(f"{what} is not valid JSON: {exc}") from None


class Fields:
    """A JSON object read field by field; ``where`` names it in errors (``edgecnn metadata``)."""

    def __init__(
        self,
        data: Any,
        where: str,
        error: type[EdgecnnError] = ModelError,
        path: str = "",
    ) -> None:
        self.where, self.error, self.path = where, error, path
        if not isinstance(data, dict):
            self.fail(f"expected an object, got {kind(data)}")
        self.data: dict[str, Any] = data

    def fail(self, problem: str, key: str | None = None) -> NoReturn:
        """Raise the error for ``problem`` at ``key`` (or at this object)."""
        field = ".".join(p for p in (self.path, key) if p)
        raise self.error(f"{self.where}: {field + ': ' if field else ''}{problem}")

    def _get(self, key: str, default: Any) -> Any:
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            self.fail("missing", key)
        return default

    def has(self, key: str) -> bool:
        """True when ``key`` is present (null included)."""
        return key in self.data

    def integer(
        self, key: str, lo: int | None = None, hi: int | None = None, default: Any = _MISSING
    ) -> Any:
        """An integer (not a bool, not 8.0, not "8") within ``lo..hi``."""
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"expected an integer, got {kind(value)} {_short(value)}", key)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.fail(f"{value} is outside {lo}..{hi}", key)
        return value

    def number(
        self, key: str, lo: float | None = None, hi: float | None = None, default: Any = _MISSING
    ) -> Any:
        """A finite number (int or float, not a bool) within ``lo..hi``."""
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(f"expected a number, got {kind(value)} {_short(value)}", key)
        if not math.isfinite(value):
            self.fail(f"{value} is not finite", key)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.fail(f"{value:g} is outside {lo:g}..{hi:g}", key)
        return value

    def string(self, key: str, choices: tuple[str, ...] = (), default: Any = _MISSING) -> Any:
        """A string, one of ``choices`` when given; null only when ``default`` is None."""
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if value is None and default is None:
            return None
        if not isinstance(value, str):
            self.fail(f"expected a string, got {kind(value)} {_short(value)}", key)
        if choices and value not in choices:
            self.fail(f"{value!r} is not one of {', '.join(choices)}", key)
        return value

    def strings(self, key: str, default: Any = _MISSING) -> Any:
        """A list of strings, as a tuple."""
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, list):
            self.fail(f"expected a list of strings, got {kind(value)}", key)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"item {i} is {kind(item)}, not a string", key)
        return tuple(value)

    def integers(self, key: str, default: Any = _MISSING) -> Any:
        """A list of integers, as a tuple."""
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, list):
            self.fail(f"expected a list of integers, got {kind(value)}", key)
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int):
                self.fail(f"item {i} is {kind(item)}, not an integer", key)
        return tuple(value)

    def child(self, key: str, default: Any = _MISSING) -> Any:
        """A nested object as :class:`Fields` (``default`` when absent or, if None, null)."""
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if value is None and default is None:
            return None
        return Fields(value, self.where, self.error, ".".join(p for p in (self.path, key) if p))

    def scalars(self, key: str, default: Any = _MISSING) -> Any:
        """An object whose values are JSON scalars (string, number, boolean, null), as a dict."""
        fields = self.child(key, default)
        if not isinstance(fields, Fields):
            return fields
        for name, value in fields.data.items():
            if isinstance(value, (dict, list)):
                fields.fail(f"expected a string, number, boolean or null, got {kind(value)}", name)
            if isinstance(value, float) and not math.isfinite(value):
                fields.fail(f"{value} is not finite", name)
        return dict(fields.data)

    def json_value(self, key: str, depth: int = 8, default: Any = _MISSING) -> Any:
        """Any JSON value nested at most ``depth`` levels (kept as is, e.g. unknown keys)."""
        value = self._get(key, default)
        if _depth(value) > depth:
            self.fail(f"nested more than {depth} levels", key)
        return value


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, iteratively (no recursion limit)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest
