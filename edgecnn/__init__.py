"""edgecnn: run small CNN image classifiers exported as self-describing ONNX files.

The public API is exactly what ``__all__`` lists. Importing edgecnn never imports TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgecnn._version import __version__
from edgecnn.errors import (
    DatasetError,
    EdgecnnError,
    ExportError,
    ImageError,
    MissingDependencyError,
    ModelError,
    ProviderError,
    SourceError,
)
from edgecnn.spec import InputSpec, ModelSpec

if TYPE_CHECKING:
    from edgecnn.live.frame_result import FrameResult
    from edgecnn.live.stream import Stream
    from edgecnn.preprocess import load_image
    from edgecnn.runtime.classifier import Classifier, Foreign, default_model_path
    from edgecnn.runtime.prediction import Prediction

#: Public names that need onnxruntime / OpenCV, imported on first use (PEP 562), so that
#: `edgecnn --help`, `edgecnn train` and `edgecnn export` do not pay for the runtime stack.
_LAZY = {
    "Classifier": "edgecnn.runtime.classifier",
    "Foreign": "edgecnn.runtime.classifier",
    "default_model_path": "edgecnn.runtime.classifier",
    "Prediction": "edgecnn.runtime.prediction",
    "load_image": "edgecnn.preprocess",
    "Stream": "edgecnn.live.stream",
    "FrameResult": "edgecnn.live.frame_result",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgecnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API only (not the helpers this module imports for itself)."""
    return sorted(__all__)


__all__ = [
    "Classifier",
    "DatasetError",
    "EdgecnnError",
    "ExportError",
    "Foreign",
    "FrameResult",
    "ImageError",
    "InputSpec",
    "MissingDependencyError",
    "ModelError",
    "ModelSpec",
    "Prediction",
    "ProviderError",
    "SourceError",
    "Stream",
    "__version__",
    "default_model_path",
    "load_image",
]
