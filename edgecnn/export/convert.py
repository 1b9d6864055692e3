"""Keras -> ONNX: a uint8 ``image`` in, ``probabilities`` out, everything else inside the graph.

The Keras model is wrapped in a ``tf.function`` whose signature is the contract: uint8 NHWC with a
symbolic batch. The function casts to float32, applies the optional normalization, calls the
model in inference mode and appends a softmax when the model ends in logits. tf2onnx's
``from_function`` machinery converts that function (``from_keras`` breaks on Keras 3 models loaded
from ``.keras`` files), without its extra copies of the weights (see
:mod:`edgecnn.export.lean_conversion`).
The symbolic batch dimension is then named ``batch`` on input and output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from edgecnn import _deps
from edgecnn.errors import ExportError
from edgecnn.export import lean_conversion
from edgecnn.normalization import Normalization
from edgecnn.spec import InputSpec

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
BATCH_DIM = "batch"
DEFAULT_OPSET = 17
MIN_OPSET = 17


def _name_batch_dim(proto: Any) -> None:
    for value in (*proto.graph.input, *proto.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = BATCH_DIM


def freeze(
    model: Any,
    spec: InputSpec,
    *,
    normalization: Normalization,
    append_softmax: bool,
    opset: int = DEFAULT_OPSET,
) -> lean_conversion.Frozen:
    """Wrap a loaded Keras classifier in the contract's ``tf.function`` and freeze it; the
    model may be dropped afterwards (:func:`frozen_to_onnx` does not need it)."""
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old; edgecnn needs {MIN_OPSET} or newer")
    tf = _deps.tensorflow()
    normalization.check_channels(spec.channels)
    # Python values, turned into constants inside the trace (captured eager tensors would
    # become extra graph inputs in tf2onnx).
    scale, mean, std = normalization.scale, list(normalization.mean), list(normalization.std)
    identity = normalization.is_identity
    model_dtype = getattr(model.inputs[0], "dtype", "float32") or "float32"
    signature = [tf.TensorSpec([None, *spec.shape], tf.uint8, name=INPUT_NAME)]

    @tf.function(input_signature=signature)
    def serve(image: Any) -> dict[str, Any]:
        x = tf.cast(image, tf.float32)
        if not identity:
            x = x * tf.constant(scale, tf.float32)
            x = (x - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)
        y = model(tf.cast(x, model_dtype), training=False)
        y = tf.cast(y, tf.float32)
        if append_softmax:
            y = tf.nn.softmax(y, axis=-1)
        return {OUTPUT_NAME: y}

    with _conversion_errors():
        return lean_conversion.freeze(serve.get_concrete_function(), opset)


def frozen_to_onnx(frozen: lean_conversion.Frozen) -> Any:
    """The fp32 ``onnx.ModelProto`` meeting the contract, from :func:`freeze`'s result."""
    with _conversion_errors():
        proto = lean_conversion.convert_frozen(frozen)
    inputs = [v.name for v in proto.graph.input]
    outputs = [v.name for v in proto.graph.output]
    if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
        raise ExportError(f"converted graph has inputs {inputs} and outputs {outputs}; unexpected")
    check_operators(proto)
    _name_batch_dim(proto)
    proto.producer_name = "edgecnn"
    return proto


def check_operators(proto: Any) -> None:
    """Refuse a graph holding operators ONNX does not define: tf2onnx logs a TensorFlow op it
    cannot convert and leaves it in the graph under its TensorFlow name (e.g. ``Erfc``), and
    the failure would otherwise surface later, in onnxruntime, as a message about the graph."""
    defs = _deps.onnx().defs
    unknown = sorted(
        {
            node.op_type
            for node in proto.graph.node
            if node.domain in ("", "ai.onnx") and not defs.has(node.op_type)
        }
    )
    if unknown:
        raise ExportError(
            "tf2onnx could not convert these TensorFlow operations to ONNX: "
            f"{', '.join(unknown)} (the model uses a layer edgecnn cannot export yet)"
        )


@contextlib.contextmanager
def _conversion_errors() -> Iterator[None]:
    """The converter raises many kinds of exceptions: one ExportError naming the stage."""
    try:
        yield
    except ExportError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"conversion to ONNX failed (tf2onnx): {first}") from exc
