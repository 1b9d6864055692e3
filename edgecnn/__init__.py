"""edgecnn: run small CNN image classifiers exported as self-describing ONNX files.

The public API is exactly what ``__all__`` lists. Importing edgecnn never imports TensorFlow.
"""

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
from edgecnn.live import FrameResult, Stream
from edgecnn.preprocess import load_image
from edgecnn.result import Prediction
from edgecnn.runtime import Classifier, Foreign, default_model_path
from edgecnn.spec import InputSpec, ModelSpec

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
