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
from edgecnn.preprocess import load_image
from edgecnn.spec import InputSpec, ModelSpec

__all__ = [
    "DatasetError",
    "EdgecnnError",
    "ExportError",
    "ImageError",
    "InputSpec",
    "MissingDependencyError",
    "ModelError",
    "ModelSpec",
    "ProviderError",
    "SourceError",
    "__version__",
    "load_image",
]
