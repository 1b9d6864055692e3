"""tf2onnx's ``from_function``, rebuilt so the weights are not copied a dozen times.

Measured on the 69 M-parameter ``plant`` network (277 MB of weights), ``from_function`` peaked
near 14 GB. The copies, and what this module does instead:

* TensorFlow's graph optimizer (grappler) and two GraphDef imports each held the weights: the
  frozen constants' bytes are taken out of the GraphDef before it is imported (tf2onnx's
  large-model mode, which folds constants itself), so those graphs stay small.
* ``optimize_graph(catch_errors=True)`` deep-copies the whole graph before each of its 12
  optimizers, on every iteration: the optimizers run here without the deep copy.
* Each optimizer pass re-serializes every node into its ``NodeProto``; with the upb protobuf
  backend the replaced attributes stay in the node's arena, so every pass left one more copy of
  every weight behind (24 copies for two iterations): each node gets a fresh, empty proto
  before a pass, which frees the old arena.

Also, only the ``image`` placeholder becomes a graph input: tensors the trace captured (the
constants of Keras' ``Normalization`` layer in EfficientNet, for example) are frozen to
constants, where ``from_function`` lists them as extra graph inputs.

If the lean optimizer loop fails, the graph is converted again and optimized by tf2onnx's own,
copying loop, so a model that converted before still converts.
"""

from __future__ import annotations

from typing import Any

from edgecnn import _deps


class _LeanLoopFailed(Exception):
    """An optimizer failed in the lean loop (the graph may be half-changed: start again)."""


def convert_function(concrete: Any, opset: int) -> Any:
    """An ``onnx.ModelProto`` for a concrete ``tf.function`` with one tensor input."""
    try:
        return _convert(concrete, opset, lean=True)
    except _LeanLoopFailed:
        return _convert(concrete, opset, lean=False)


def _convert(concrete: Any, opset: int, *, lean: bool) -> Any:
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
        if lean:
            try:
                graph = _optimize(graph)
            except Exception as exc:
                raise _LeanLoopFailed() from exc
        else:
            graph = optimizer.optimize_graph(graph, True)
        _fresh_protos(graph)
        return graph.make_model(f"converted from {concrete.name}")


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
