"""tf2onnx's ``from_function``, rebuilt so the weights are not copied a dozen times.

Measured on the 69 M-parameter ``plant`` network (277 MB of weights), ``from_function`` peaked
near 14 GB. The copies, and what this module does instead:

* TensorFlow's graph optimizer (grappler) and two GraphDef imports each held the weights: the
  frozen constants' bytes are taken out of the GraphDef before it is imported (tf2onnx's
  large-model mode, which folds constants itself), so those graphs stay small.
* ``optimize_graph(catch_errors=True)`` deep-copies the whole graph before each of its 12
  optimizers, on every iteration: the optimizers run here without the deep copy.
* tf2onnx turns each frozen constant into an ONNX tensor through four copies (the TensorFlow
  proto, a numpy array, ``tobytes()``, the ONNX proto), then folds it with TensorFlow into a
  second ONNX constant through as many: large constants here go straight from the frozen bytes
  into one ONNX tensor (:func:`_lean_constants`).
* Each optimizer pass re-serializes every node into its ``NodeProto``; with the upb protobuf
  backend the replaced attributes stay in the node's arena, so every pass left one more copy of
  every weight behind (24 copies for two iterations): each node gets a fresh, empty proto
  before a pass, which frees the old arena.

Also, only the ``image`` placeholder becomes a graph input: tensors the trace captured (the
constants of Keras' ``Normalization`` layer in EfficientNet, for example) are frozen to
constants, where ``from_function`` lists them as extra graph inputs.

Freezing (:func:`freeze`) is separate from converting (:func:`convert_frozen`), so the caller can
drop the Keras model, whose variables are one more copy of the weights, in between.

If the lean optimizer loop fails, the graph is converted again and optimized by tf2onnx's own,
copying loop, so a model that converted before still converts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn import _deps
from edgecnn.export import graph_rewrites


class _LeanLoopFailed(Exception):
    """An optimizer failed in the lean loop (the graph may be half-changed: start again)."""


@dataclass
class Frozen:
    """A concrete function frozen to a GraphDef whose large constants' bytes are held apart
    (``values``: node name -> bytes), with the names and the ONNX opset tf2onnx needs: all the
    conversion takes, the model is not needed."""

    graph_def: Any
    values: dict[str, bytes]
    input_names: list[str]
    output_names: list[str]
    rename: dict[str, str]
    name: str
    opset: int


def freeze(concrete: Any, opset: int) -> Frozen:
    """Freeze a concrete ``tf.function`` with one tensor input (variables become constants),
    to be converted at ``opset``."""
    tf = _deps.tensorflow()
    tf2onnx = _deps.tf2onnx()
    from tf2onnx import tf_loader
    from tf2onnx.tf_utils import compress_graph_def

    input_names = [concrete.inputs[0].name]
    output_names = [t.name for t in concrete.outputs if t.dtype != tf.dtypes.resource]
    rename = tf2onnx.convert.tensor_names_from_structed(concrete, input_names, output_names)
    with tf.device("/cpu:0"):
        graph_def = tf_loader.convert_variables_to_constants_large_model(concrete)
    graph_rewrites.rewrite(graph_def)  # ops tf2onnx cannot convert (XLA-only calls, Erfc)
    values = compress_graph_def(graph_def)
    # The emptied constants' bytes stay in the proto's arena (upb frees nothing before the
    # message goes): a re-parsed copy holds only the small graph.
    compact = type(graph_def).FromString(graph_def.SerializeToString())
    del graph_def
    return Frozen(compact, values, input_names, output_names, rename, concrete.name, opset)


def convert_frozen(frozen: Frozen) -> Any:
    """An ``onnx.ModelProto`` for a frozen function (lean loop, tf2onnx's loop if it fails).
    Consumes ``frozen.values`` (their bytes are in the returned model)."""
    try:
        return _convert(frozen, lean=True)
    except _LeanLoopFailed:
        return _convert(frozen, lean=False)


def _convert(frozen: Frozen, *, lean: bool) -> Any:
    tf = _deps.tensorflow()
    from tf2onnx import optimizer
    from tf2onnx.tfonnx import process_tf_graph

    with tf.device("/cpu:0"), tf.Graph().as_default() as tf_graph:
        tf.import_graph_def(frozen.graph_def, name="")
        with _lean_constants(frozen.values) if lean else contextlib.nullcontext():
            graph = process_tf_graph(
                tf_graph,
                continue_on_error=True,
                opset=frozen.opset,
                input_names=frozen.input_names,
                output_names=frozen.output_names,
                const_node_values=frozen.values,
                tensors_to_rename=frozen.rename,
            )
        if lean:
            try:
                graph = _optimize(graph)
            except Exception as exc:
                raise _LeanLoopFailed() from exc
            frozen.values.clear()  # in the ONNX graph now; kept until here for the fallback
        else:
            graph = optimizer.optimize_graph(graph, True)
        _fresh_protos(graph)
        return graph.make_model(f"converted from {frozen.name}")


#: TensorFlow dtypes whose frozen bytes are exactly ONNX's ``raw_data`` (little-endian numbers).
_PLAIN_TYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8")
#: TensorFlow ops that pass their one input through unchanged (a frozen variable's read).
_PASS_THROUGH = ("Identity", "ReadVariableOp")


@contextlib.contextmanager
def _lean_constants(values: dict[str, bytes]) -> Iterator[None]:
    """While tf2onnx reads the graph, the constants held in ``values`` are made once:

    * its constant -> ONNX tensor step takes them straight from those bytes (one copy) instead
      of through numpy (three more); the bytes are those ``numpy_helper.from_array`` writes;
    * its TensorFlow constant folding evaluates every constant to numpy and then replaces each
      Const node by a new one made from that array (two more copies each): the arrays of
      constants that are plain Consts, or a frozen variable's read of one (an identity), are
      dropped from what it folds (the Const node holds the value, tf2onnx's optimizer removes
      the identity); arrays computed from them are still folded.

    Other constants go through tf2onnx's own functions (it looks them up in its modules at
    each call, which is where they are swapped, for the conversion only).
    """
    onnx = _deps.onnx()
    tf = _deps.tensorflow()
    from tf2onnx import tf_utils, tfonnx

    to_tensor, folding = tf_utils.tf_to_onnx_tensor, tfonnx.compute_const_folding_using_tf

    def lean_tensor(tensor: Any, name: str = "") -> Any:
        content = values.get(name.rsplit(":", 1)[0])
        dtype = tf.dtypes.as_dtype(tensor.dtype)
        if content is None or dtype.name not in _PLAIN_TYPES or not np.little_endian:
            return to_tensor(tensor, name=name)
        dims = [d.size for d in tensor.tensor_shape.dim]
        np_dtype = np.dtype(dtype.as_numpy_dtype)
        if int(np.prod(dims, dtype=np.int64)) * np_dtype.itemsize != len(content):
            return to_tensor(tensor, name=name)
        return onnx.TensorProto(
            name=name,
            data_type=onnx.helper.np_dtype_to_tensor_dtype(np_dtype),
            dims=dims,
            raw_data=content,
        )

    def lean_folding(graph: Any, const_values: Any, outputs: Any) -> Any:
        found, dtypes = folding(graph, const_values, outputs)
        plain = {f"{name}:0" for name in values}
        for op in graph.get_operations():  # in order: a variable read is a pass-through
            if op.type in _PASS_THROUGH and len(op.inputs) == 1 and op.inputs[0].name in plain:
                plain.update(t.name for t in op.outputs)
        for name in plain:
            found.pop(name, None)
        return found, dtypes

    tf_utils.tf_to_onnx_tensor, tfonnx.compute_const_folding_using_tf = lean_tensor, lean_folding
    try:
        yield
    finally:
        tf_utils.tf_to_onnx_tensor, tfonnx.compute_const_folding_using_tf = to_tensor, folding


def _optimize(graph: Any) -> Any:
    """tf2onnx's optimizer loop (same optimizers, same order, until nothing changes), without
    the deep copy before each optimizer and with fresh node protos before each pass."""
    from tf2onnx.optimizer import _get_optimizers

    iteration, changed = 0, True
    while changed:
        changed = False
        for factory in _get_optimizers().values():
            _fresh_protos(graph)
            opt = factory()
            graph = opt.optimize(graph, iteration) or graph
            changed = changed or opt.graph_been_opt
        iteration += 1
    graph.topological_sort(graph.get_nodes())
    return graph


def _fresh_protos(graph: Any) -> None:
    """Give every node with attributes a new, empty ``NodeProto`` (``update_proto`` refills it
    from the node's attributes), releasing the arena that kept the replaced tensor copies."""
    onnx = _deps.onnx()
    for node in graph.get_nodes():
        old = node._op
        if len(old.attribute):
            fresh = onnx.NodeProto(
                name=old.name, op_type=old.op_type, domain=old.domain, doc_string=old.doc_string
            )
            fresh.input.extend(old.input)
            fresh.output.extend(old.output)
            node._op = fresh
