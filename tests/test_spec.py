"""ModelSpec <-> metadata JSON: round trip, validation, labels files, sizes."""

from __future__ import annotations

import json

import pytest

from edgecnn.errors import ModelError
from edgecnn.spec import InputSpec, ModelSpec, parse_size, read_labels_file


def make_spec(**changes) -> ModelSpec:
    base = {"labels": ("Healthy", "Powdery", "Rust"), "input": InputSpec(256, 256)}
    base.update(changes)
    return ModelSpec(**base)


def test_round_trip_keeps_every_field_and_unknown_keys():
    spec = make_spec(
        precision="int8-static",
        architecture="plant",
        created="2026-11-22T10:00:00Z",
        training={"val_accuracy": 0.97, "epochs": 22},
        quantization={"method": "minmax", "per_channel": True},
        extra={"future_key": [1, 2]},
    )
    again = ModelSpec.from_json(spec.to_json())
    assert again == spec
    assert json.loads(spec.to_json())["format"] == 1
    assert json.loads(spec.to_json())["future_key"] == [1, 2]


def test_design_doc_example_parses():
    text = json.dumps(
        {
            "format": 1,
            "labels": ["Healthy", "Powdery", "Rust"],
            "input": {
                "height": 256,
                "width": 256,
                "channels": 3,
                "color": "rgb",
                "fit": "crop",
                "interpolation": "bilinear",
            },
            "precision": "fp32",
            "architecture": "plant",
        }
    )
    spec = ModelSpec.from_json(text)
    assert spec.input.shape == (256, 256, 3)
    assert spec.num_classes == 3


VALID = {
    "format": 1,
    "labels": ["a", "b"],
    "input": {
        "height": 8,
        "width": 8,
        "channels": 3,
        "color": "rgb",
        "fit": "crop",
        "interpolation": "area",
    },
    "precision": "fp32",
}


def changed(path: str, value: object = None, *, delete: bool = False) -> str:
    """VALID as JSON with the dotted ``path`` set to ``value`` (or deleted)."""
    data = json.loads(json.dumps(VALID))
    *parents, key = path.split(".")
    target = data
    for name in parents:
        target = target[name]
    if delete:
        del target[key]
    else:
        target[key] = value
    return json.dumps(data)


BAD_METADATA = [
    ("not json", "not valid JSON"),
    ("[]", "expected an object, got a list"),
    ("[" * 100_000, "nested too deeply|not valid JSON"),
    ('{"labels": [' + "1" * 5000 + "]}", "not valid JSON"),  # int() digit limit: ValueError
    (changed("format", 2), "format 2"),
    (changed("format", True), "format: expected an integer"),
    (changed("labels", "abc"), "labels: expected a list of strings"),
    (changed("labels", [1]), "labels: item 0 is a number"),
    (changed("labels", []), "no labels"),
    (changed("labels", ["a", "a"]), "duplicate"),
    (changed("input", delete=True), "input: missing"),
    (changed("input", "x"), "input: expected an object, got a string"),
    (changed("input.height", 8.9), "input.height: expected an integer, got a number 8.9"),
    (changed("input.height", "8"), "input.height: expected an integer, got a string"),
    (changed("input.width", True), "input.width: expected an integer, got a boolean"),
    (changed("input.height", 8193), "input.height: 8193 is outside 1..8192"),
    (changed("input.width", 0), "input.width: 0 is outside"),
    (changed("input.channels", None), "input.channels: expected an integer, got null"),
    (changed("input.color", delete=True), "input.color: missing"),
    (changed("input.fit", delete=True), "input.fit: missing"),
    (changed("input.interpolation", delete=True), "input.interpolation: missing"),
    (changed("input.fit", "zoom"), "input.fit: 'zoom' is not one of"),
    (changed("input.color", ["rgb"]), "input.color: expected a string"),
    (changed("input.color", "gray"), "needs 1 channel"),
    (changed("precision", "int4"), "precision: 'int4' is not one of"),
    (changed("precision", delete=True), "precision: missing"),
    (changed("architecture", 5), "architecture: expected a string"),
    (changed("training", "oops"), "training: expected an object, got a string"),
    (changed("training", 5), "training: expected an object, got a number"),
    (changed("training", {"x": {"y": 1}}), "training.x: expected a string, number"),
    (changed("training", {"x": float("nan")}), "training.x: nan is not finite"),
    (changed("quantization", [1]), "quantization: expected an object, got a list"),
    (changed("verification", "x"), "verification: expected an object"),
    (changed("export", "x"), "export: expected an object, got a string"),
    (changed("export", {"normalization": 3}), "export.normalization: expected an object"),
    (changed("future", json.loads("[" * 20 + "]" * 20)), "future: nested more than 8 levels"),
]


@pytest.mark.parametrize(("text", "message"), BAD_METADATA)
def test_invalid_metadata_is_one_model_error_naming_the_field(text, message):
    with pytest.raises(ModelError, match=message) as caught:
        ModelSpec.from_json(text)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("edgecnn metadata")


def test_the_valid_base_parses():
    assert ModelSpec.from_json(json.dumps(VALID)).input.interpolation == "area"


def test_info_and_the_runtime_refuse_bad_metadata_with_one_line(tmp_path):
    """No traceback from any metadata: ``edgecnn info`` prints one Error line, exit 1."""
    from click.testing import CliRunner

    from edgecnn import Classifier
    from edgecnn.cli import cli
    from tests.models import color_model, save

    for n, overrides in enumerate(({"training": "oops"}, {"export": "x"}, {"input": 5})):
        path = save(color_model(spec_overrides=overrides), tmp_path / f"bad{n}.onnx")
        key = next(iter(overrides))
        with pytest.raises(ModelError, match=f"bad{n}.onnx: edgecnn metadata: {key}: expected"):
            Classifier.load(path, provider="cpu")
        result = CliRunner().invoke(cli, ["info", str(path)])
        assert result.exit_code == 1 and result.exception is not None
        assert isinstance(result.exception, SystemExit)
        assert result.output.count("\n") == 1 and result.output.startswith("Error: ")


@pytest.mark.parametrize(
    ("text", "size"),
    [("224x160", (224, 160)), ("96", (96, 96)), (" 32 X 48 ", (32, 48)), ("28,28", (28, 28))],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "x", "0x5", "10x", "ax b"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_labels_files_text_and_json(tmp_path):
    (tmp_path / "a.txt").write_text("cat\n\ndog\n  bird  \n", encoding="utf-8")
    (tmp_path / "b.json").write_text('["cat", "dog"]', encoding="utf-8")
    (tmp_path / "c.json").write_text('{"labels": ["x"]}', encoding="utf-8")
    (tmp_path / "d.txt").write_text("\n\n", encoding="utf-8")
    assert read_labels_file(str(tmp_path / "a.txt")) == ("cat", "dog", "bird")
    assert read_labels_file(str(tmp_path / "b.json")) == ("cat", "dog")
    assert read_labels_file(str(tmp_path / "c.json")) == ("x",)
    with pytest.raises(ModelError, match="empty"):
        read_labels_file(str(tmp_path / "d.txt"))
    with pytest.raises(ModelError, match="cannot read"):
        read_labels_file(str(tmp_path / "missing.txt"))


def test_anchor_and_pad_value_round_trip_and_are_checked():
    spec = InputSpec(32, 128, 1, "gray", "height", "area", anchor="left", pad_value=255)
    data = spec.to_dict()
    assert data["anchor"] == "left" and data["pad_value"] == 255
    assert InputSpec.from_dict(data) == spec
    plain = InputSpec(32, 32).to_dict()
    assert "anchor" not in plain and "pad_value" not in plain  # defaults stay unwritten
    with pytest.raises(ModelError, match="pad value"):
        InputSpec(32, 32, pad_value=256)
    with pytest.raises(ModelError, match="anchor"):
        InputSpec(32, 32, anchor="right")
    with pytest.raises(ModelError, match="pad_value"):
        InputSpec.from_dict({**data, "pad_value": 1.5})
