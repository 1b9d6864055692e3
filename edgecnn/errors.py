"""One exception tree: every failure edgecnn reports derives from :class:`EdgecnnError`.

The CLI maps these to exit codes and one-line messages; library users catch them by kind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: An API parameter named in a message: in backquotes (`` `input_size` ``), never as a CLI flag.
_PARAMETER = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


def with_names(message: str, names: Mapping[str, str]) -> str:
    """``message`` with each `` `parameter` `` that ``names`` maps replaced by the name the
    reader knows it by (the CLI's flag: `` `logits` `` -> ``--logits``); others stay."""
    return _PARAMETER.sub(lambda m: names.get(m.group(1), m.group(0)), message)


class EdgecnnError(Exception):
    """Base class of every error edgecnn raises on purpose."""


class ModelError(EdgecnnError):
    """The model file cannot be used: not ONNX, no edgecnn metadata, labels that do not fit."""


class ProviderError(EdgecnnError):
    """The requested execution provider cannot run here (for example CUDA libraries missing)."""


class ImageError(EdgecnnError):
    """One input cannot be turned into a model input; carries the source it came from."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class SourceError(EdgecnnError):
    """An input location (path, glob, camera, stream) cannot be opened at all."""


class DatasetError(EdgecnnError):
    """A training / evaluation dataset folder is unusable (missing, empty, one class, ...)."""


class ExportError(EdgecnnError):
    """Conversion, quantization or verification of a model failed."""


class MissingDependencyError(EdgecnnError):
    """An optional extra is not installed; the message says which ``pip install`` fixes it."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; it comes with the '{extra}' extra: "
            f"pip install 'edgecnn[{extra}]'"
        )
        self.package = package
        self.extra = extra
