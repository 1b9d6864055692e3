"""Quantization failures on small hand-built ONNX graphs (no TensorFlow, runs in seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgecnn.errors import ExportError
from edgecnn.export import quantize


def _graph_with(op_type: str) -> onnx.ModelProto:
    """uint8 image -> float -> ``op_type`` -> flatten -> softmax, at opset 17."""
    nodes = [
        helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
        helper.make_node(op_type, ["x"], ["y"]),
        helper.make_node("Flatten", ["y"], ["z"]),
        helper.make_node("Softmax", ["z"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", 4, 4, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 48])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("method", ["static", "dynamic"])
def test_an_operator_onnx_does_not_define_is_an_export_error_and_leaves_no_file(
    method: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An op ONNX does not define (here TensorFlow's Erfc, as tf2onnx leaves an op it cannot
    convert): onnxruntime's shape inference would save the model to the working directory before
    raising; it is refused first, naming the op, and the user's folder stays clean."""
    monkeypatch.chdir(tmp_path)
    model, settings = _graph_with("Erfc"), quantize.QuantSettings()
    with pytest.raises(ExportError, match=r"could not convert.*: Erfc "):
        if method == "static":
            quantize.quantize_static(model, np.zeros((2, 4, 4, 3), np.uint8), settings)
        else:
            quantize.quantize_dynamic(model, settings)
    assert list(tmp_path.iterdir()) == []
