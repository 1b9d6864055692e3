"""Lazy imports of the heavy workstation stack (TensorFlow, Keras, tf2onnx, onnx).

Export is the only place these are needed; importing ``edgecnn.export`` stays cheap and a
missing package becomes a :class:`~edgecnn.errors.MissingDependencyError` with the install hint.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from edgecnn.errors import MissingDependencyError


def _require(module: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package, "train") from exc


def tensorflow() -> ModuleType:
    """``tensorflow``, imported quietly (no C++ info logs, no GPU probing noise)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return _require("tensorflow", "tensorflow")


def keras() -> ModuleType:
    """``keras`` (3.x), after TensorFlow so the TensorFlow backend is used."""
    tensorflow()
    return _require("keras", "keras")


def tf2onnx() -> ModuleType:
    """``tf2onnx`` (Keras/TensorFlow -> ONNX converter)."""
    tensorflow()
    return _require("tf2onnx", "tf2onnx")


def onnx() -> ModuleType:
    """``onnx`` (graph editing, checker)."""
    return _require("onnx", "onnx")
