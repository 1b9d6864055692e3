"""One normalization type and parser for models from elsewhere: classify, eval and export."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from edgecnn.cli import cli
from edgecnn.errors import ModelError
from edgecnn.normalization import Normalization, parse_normalization, parse_number
from edgecnn.runtime.prediction import softmax
from tests.models import IR_VERSION, save


@pytest.mark.parametrize(
    ("text", "value"),
    [("1/255", 1 / 255), ("1/127.5", 1 / 127.5), ("0.5", 0.5), (" 2 ", 2.0), ("1e-3", 1e-3)],
)
def test_numbers_and_quotients(text: str, value: float) -> None:
    assert parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["1/0", "x", "", "nan", "inf", "1/2/3", "/5"])
def test_bad_numbers_are_one_model_error(text: str) -> None:
    with pytest.raises(ModelError, match="is not a number"):
        parse_number(text)


def test_minus_one_to_one_models() -> None:
    norm = parse_normalization("1/127.5", "1")
    assert norm == Normalization(1 / 127.5, (1.0,), (1.0,))
    out = norm.apply(np.array([0, 255], np.uint8))
    np.testing.assert_allclose(out, [-1.0, 1.0], atol=1e-6)


def test_one_softmax() -> None:
    probs = softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    np.testing.assert_allclose(probs, [[0.5, 0.5], [0.25, 0.75]])


def test_classify_accepts_a_quotient_scale(tmp_path) -> None:
    """``classify --scale 1/255`` (once refused) runs a float-input model like the decimal."""
    image = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 16, 16, 3])
    out = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])
    nodes = [helper.make_node("ReduceMean", ["input", "axes"], ["scores"], keepdims=0)]
    axes = onnx.numpy_helper.from_array(np.array([1, 2], np.int64), "axes")
    graph = helper.make_graph(nodes, "mean", [image], [out], [axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = IR_VERSION
    path = save(model, tmp_path / "float.onnx")
    (tmp_path / "labels.txt").write_text("r\ng\nb\n")
    cv2.imwrite(str(tmp_path / "blue.png"), np.full((16, 16, 3), (255, 0, 0), np.uint8))
    rows = []
    for scale in ("1/255", "0.00392156862745098"):
        args = ["classify", str(tmp_path / "blue.png"), "-m", str(path), "--labels",
                str(tmp_path / "labels.txt"), "--input-size", "16x16", "--scale", scale,
                "--logits", "-o", str(tmp_path / "out.jsonl"), "-q"]  # fmt: skip
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        rows.append(json.loads((tmp_path / "out.jsonl").read_text()))
    assert rows[0]["label"] == "b"
    assert rows[0]["score"] == pytest.approx(rows[1]["score"])
    bad = CliRunner().invoke(cli, [*args[:-6], "--scale", "1/0", "-q"])
    assert bad.exit_code == 1 and "'1/0' is not a number" in bad.output
