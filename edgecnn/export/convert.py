"""Keras -> ONNX: a uint8 ``image`` in, ``probabilities`` out, everything else inside the graph.

The Keras model is wrapped in a ``tf.function`` whose signature is the contract: uint8 NHWC with a
symbolic batch. The function casts to float32, applies the optional normalization, calls the
model in inference mode and appends a softmax when the model ends in logits. tf2onnx's
``from_function`` machinery converts that function (``from_keras`` breaks on Keras 3 models loaded
from ``.keras`` files), without its extra copies of the weights (see :func:`_convert_function`).
The symbolic batch dimension is then named ``batch`` on input and output.
"""

from __future__ import annotations

from typing import Any

from edgecnn import _deps
from edgecnn.errors import ExportError
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


def _convert_function(concrete: Any, opset: int) -> Any:
    """tf2onnx's ``from_function`` minus its copies of the weights, plus constant captures.

    * Only the ``image`` placeholder is a graph input: tensors the trace captured (the constants
      of Keras' ``Normalization`` layer in EfficientNet, for example) are frozen to constants,
      where ``from_function`` would list them as extra graph inputs.
    * The weights never travel through TensorFlow's graph optimizer or a second GraphDef import:
      as in tf2onnx's large-model mode, the frozen constants' bytes are taken out of the
      GraphDef before it is imported (tf2onnx folds constants itself), so the GraphDef, its
      imported graph and the optimizer's copies stay small. The peak falls from about 50 to a
      few times the weights (measured in the models note).
    """
    tf = _deps.tensorflow()
    tf2onnx = _deps.tf2onnx()
    from tf2onnx import optimizer, tf_loader
    from tf2onnx.tf_utils import compress_graph_def
    from tf2onnx.tfonnx import process_tf_graph

    input_names = [concrete.inputs[0].name]
    output_names = [t.name for t in concrete.outputs if t.dtype != tf.dtypes.resource]
    rename = tf2onnx.convert.tensor_names_from_structed(concrete, input_names, output_names)
    with tf.device("/cpu:0"):
        graph_def = tf_loader.convert_variables_to_constants_large_model(concrete)
    values = compress_graph_def(graph_def)
    with tf.device("/cpu:0"), tf.Graph().as_default() as tf_graph:
        tf.import_graph_def(graph_def, name="")
        del graph_def
        graph = process_tf_graph(
            tf_graph,
            continue_on_error=True,
            opset=opset,
            input_names=input_names,
            output_names=output_names,
            const_node_values=values,
            tensors_to_rename=rename,
        )
        del values
        graph = optimizer.optimize_graph(graph, True)
        return graph.make_model(f"converted from {concrete.name}")


def to_onnx(
    model: Any,
    spec: InputSpec,
    *,
    normalization: Normalization,
    append_softmax: bool,
    opset: int = DEFAULT_OPSET,
) -> Any:
    """Convert a loaded Keras classifier to an fp32 ``onnx.ModelProto`` meeting the contract."""
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

    try:
        proto = _convert_function(serve.get_concrete_function(), opset)
    except ExportError:
        raise
    except Exception as exc:  # the converter raises many kinds; name the stage
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"conversion to ONNX failed (tf2onnx): {first}") from exc
    inputs = [v.name for v in proto.graph.input]
    outputs = [v.name for v in proto.graph.output]
    if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
        raise ExportError(f"converted graph has inputs {inputs} and outputs {outputs}; unexpected")
    _name_batch_dim(proto)
    proto.producer_name = "edgecnn"
    return proto
