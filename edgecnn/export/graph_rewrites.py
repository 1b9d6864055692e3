"""Rewrites of a frozen GraphDef, before tf2onnx reads it, for ops it cannot convert.

* Function calls left in the graph: Keras' TensorFlow backend runs a grouped convolution (the
  depthwise convolution of ConvNeXt, RegNet's group convolutions) inside a nested
  ``tf.function(jit_compile=True)``, because TensorFlow's CPU kernel has none; freezing does not
  inline a function marked for XLA, and tf2onnx has no converter for the call
  (``StatefulPartitionedCall``). The call is replaced by the function's body (one ``Conv2D``
  that ONNX's ``Conv`` with ``group`` expresses).
* ``Erfc``: TensorFlow's exact GELU is ``0.5 * x * erfc(-x / sqrt(2))``; tf2onnx converts
  ``Erf`` but not ``Erfc``, which becomes ``1 - erf(t)``.
"""

from __future__ import annotations

from typing import Any

from edgecnn import _deps

CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall")


def rewrite(graph_def: Any) -> None:
    """Apply every rewrite to ``graph_def`` in place."""
    inline_calls(graph_def)
    replace_erfc(graph_def)


def inline_calls(graph_def: Any) -> int:
    """Replace each call of a function of the graph's library by the function's body (nested
    calls included); returns how many calls were inlined. Functions left unused are dropped."""
    library = {f.signature.name: f for f in graph_def.library.function}
    inlined = 0
    while True:  # one call at a time: the graph changes under each
        call = next(
            (n for n in graph_def.node if n.op in CALL_OPS and n.attr["f"].func.name in library),
            None,
        )
        if call is None:
            break
        _inline(graph_def, call, library[call.attr["f"].func.name])
        inlined += 1
    if inlined:
        _drop_unused_functions(graph_def)
    return inlined


def _inline(graph_def: Any, call: Any, function: Any) -> None:
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph_def

    body, flat_names = function_def_to_graph_def(function)
    prefix = f"{call.name}/"
    args = [arg.name for arg in function.signature.input_arg]
    data = [name for name in call.input if not name.startswith("^")]
    controls = [name for name in call.input if name.startswith("^")]
    bound = dict(zip(args, data, strict=True))

    def source(name: str) -> str:
        """A body node's input, as a name in the outer graph."""
        control = name.startswith("^")
        node = name.lstrip("^").split(":")[0]
        if node in bound:  # a function argument: the call's input (a placeholder has one output)
            return f"^{bound[node].split(':')[0]}" if control else bound[node]
        return f"^{prefix}{node}" if control else prefix + name

    for node in body.node:
        if node.name in bound:
            continue
        inputs = [source(name) for name in node.input]
        if not inputs:  # a constant: runs after the call's control dependencies, as before
            inputs = list(controls)
        node.name = prefix + node.name
        del node.input[:]
        node.input.extend(inputs)
        graph_def.node.add().CopyFrom(node)
    outputs = [source(flat_names[function.ret[arg.name]]) for arg in function.signature.output_arg]
    _rewire(graph_def, call.name, outputs)
    graph_def.node.remove(call)


def _rewire(graph_def: Any, old: str, outputs: list[str]) -> None:
    """Point every consumer of node ``old``'s outputs at ``outputs`` (its control consumers at
    the nodes producing them)."""
    producers = [f"^{name.lstrip('^').split(':')[0]}" for name in outputs]
    for node in graph_def.node:
        if node.name == old:
            continue
        rewired: list[str] = []
        for name in node.input:
            base, _, port = name.lstrip("^").partition(":")
            if base != old:
                rewired.append(name)
            elif name.startswith("^"):
                rewired.extend(p for p in producers if p not in rewired)
            else:
                rewired.append(outputs[int(port or 0)])
        if rewired != list(node.input):
            del node.input[:]
            node.input.extend(rewired)


def _drop_unused_functions(graph_def: Any) -> None:
    """Remove the library functions no node of the graph reaches (directly or through other
    functions), so that tf2onnx does not convert bodies that were inlined."""
    library = {f.signature.name: f for f in graph_def.library.function}
    reached: set[str] = set()
    todo = [_called(node) for node in graph_def.node]
    names = [name for group in todo for name in group]
    while names:
        name = names.pop()
        if name in reached or name not in library:
            continue
        reached.add(name)
        for node in library[name].node_def:
            names.extend(_called(node))
    kept = [f for f in graph_def.library.function if f.signature.name in reached]
    del graph_def.library.function[:]
    graph_def.library.function.extend(kept)


def _called(node: Any) -> list[str]:
    """The functions a node's attributes name (calls, control-flow bodies)."""
    names = []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        elif value.HasField("list"):
            names.extend(f.name for f in value.list.func)
    return names


def replace_erfc(graph_def: Any) -> int:
    """``Erfc(t)`` -> ``Sub(1, Erf(t))`` (the same dtype); returns how many were replaced."""
    tf = _deps.tensorflow()
    replaced = 0
    for node in [n for n in graph_def.node if n.op == "Erfc"]:
        dtype = tf.dtypes.as_dtype(node.attr["T"].type)
        erf = graph_def.node.add(name=f"{node.name}/erf", op="Erf", input=list(node.input))
        erf.attr["T"].CopyFrom(node.attr["T"])
        one = graph_def.node.add(name=f"{node.name}/one", op="Const")
        one.attr["dtype"].type = node.attr["T"].type
        one.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(1.0, dtype=dtype))
        node.op = "Sub"
        del node.input[:]
        node.input.extend([one.name, erf.name])
        replaced += 1
    return replaced
