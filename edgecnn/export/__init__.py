"""Keras -> one self-describing, verified ONNX file (TensorFlow, tf2onnx, onnx: imported lazily).

``export_model(model, output, ExportOptions(...))`` converts (uint8 ``image`` in, ``probabilities``
out, normalization and softmax inside the graph), optionally quantizes (fp16, int8-dynamic, static
int8 QDQ calibrated on real images), verifies against Keras, writes the ``edgecnn`` metadata and
writes the file atomically. Importing this package imports no TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgecnn.export.exporter import ExportOptions, ExportResult, export_model

__all__ = ["ExportOptions", "ExportResult", "export_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from edgecnn.export import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'edgecnn.export' has no attribute {name!r}")
