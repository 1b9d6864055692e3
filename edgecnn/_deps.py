"""Lazy imports of heavy optional stacks (TensorFlow, Keras, tf2onnx, onnx; Ray Data).

The one place these are imported, for training, export, ``eval`` of Keras models and
``bench --keras``: importing any edgecnn module stays cheap, and a missing package becomes a
:class:`~edgecnn.errors.MissingDependencyError` naming the extra that installs it.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from types import ModuleType

from edgecnn.errors import MissingDependencyError


def _require(module: str, package: str, extra: str = "train") -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package, extra) from exc


#: Lines TensorFlow prints while it loads, before any log level applies (twice: two libraries).
TENSORFLOW_STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|port\.cc:\d+\] oneDNN custom operations|"
    r"cudart_stub\.cc|cuda_executor\.cc|cuda_fft\.cc|cuda_dnn\.cc|cuda_blas\.cc|"
    r"Could not find cuda drivers|computation_placer\.cc|Unable to register cu(DNN|FFT|BLAS)|"
    r"This TensorFlow binary is optimized|To enable the following instructions|"
    r"TF-TRT Warning|cpu_feature_guard\.cc|Compiler flags\.$"
)


def pass_on_stderr(text: str, *, drop_startup_noise: bool = True) -> None:
    """Write the non-blank lines of ``text`` (what native code or the export's TensorFlow
    child printed) to ``sys.stderr``; with ``drop_startup_noise``, without TensorFlow's
    start-up banners (:data:`TENSORFLOW_STARTUP_NOISE`), so real errors still show."""
    kept = [
        line
        for line in text.splitlines()
        if line.strip() and not (drop_startup_noise and TENSORFLOW_STARTUP_NOISE.search(line))
    ]
    if kept:
        sys.stderr.write("\n".join(kept) + "\n")
        sys.stderr.flush()


def tensorflow() -> ModuleType:
    """``tensorflow``. Its log level is the application's choice (the ``edgecnn`` command
    quiets it in its own process, see :mod:`edgecnn.cli.quiet`)."""
    return _require("tensorflow", "tensorflow")


def keras() -> ModuleType:
    """``keras`` (3.x) on the TensorFlow backend (TensorFlow is imported first)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    tensorflow()
    return _require("keras", "keras")


def tf2onnx() -> ModuleType:
    """``tf2onnx`` (Keras/TensorFlow -> ONNX converter)."""
    tensorflow()
    return _require("tf2onnx", "tf2onnx")


def onnx() -> ModuleType:
    """``onnx`` (graph editing, checker)."""
    return _require("onnx", "onnx")


def ray_data() -> ModuleType:
    """``ray.data`` (with pyarrow) for classifying on a Ray cluster: the ``ray`` extra."""
    _require("pyarrow", "pyarrow", "ray")
    return _require("ray.data", "ray[data]", "ray")
