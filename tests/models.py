"""Tiny real ONNX models for runtime tests, built with onnx.helper (no TensorFlow).

The "colour model" follows the edgecnn contract exactly (uint8 NHWC ``image`` in,
``probabilities`` out, metadata inside): it averages each channel and scores red / green /
blue, so a red picture really is classified "red".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgecnn.spec import InputSpec, ModelSpec

COLOR_LABELS = ("red", "green", "blue")
IR_VERSION = 10  # onnxruntime 1.31 reads IR <= 13; onnx 1.23 would write 14


def color_model(
    *,
    size: tuple[int, int] = (16, 16),
    labels: tuple[str, ...] = COLOR_LABELS,
    metadata: bool = True,
    batch: int | str = "N",
    input_dtype: int = TensorProto.UINT8,
    spec_overrides: dict | None = None,
) -> onnx.ModelProto:
    """An RGB model whose softmax scores follow the image's mean R, G, B (x 0.1 sharpness)."""
    height, width = size
    image = helper.make_tensor_value_info("image", input_dtype, [batch, height, width, 3])
    classes = len(labels)
    probs = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [batch, classes])
    weights = np.zeros((3, classes), np.float32)
    for i in range(min(3, classes)):
        weights[i, i] = 0.1
    nodes = [
        helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x", "axes"], ["mean"], keepdims=0),
        helper.make_node("MatMul", ["mean", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(np.array([1, 2], np.int64), "axes"),
        numpy_helper.from_array(weights, "w"),
    ]
    graph = helper.make_graph(nodes, "color", [image], [probs], inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=IR_VERSION
    )
    if metadata:
        spec = ModelSpec(
            labels=labels,
            input=InputSpec(height, width, 3, "rgb", "stretch", "area"),
            precision="fp32",
            architecture="color-test",
        )
        data = spec.to_dict()
        data.update(spec_overrides or {})
        import json

        helper.set_model_props(model, {"edgecnn": json.dumps(data)})
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    """Write ``model`` to ``path`` and return the path."""
    onnx.save(model, str(path))
    return path
