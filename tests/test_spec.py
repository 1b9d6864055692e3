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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "not a JSON object"),
        ('{"format": 2, "labels": ["a"], "input": {"height": 1, "width": 1}}', "format 2"),
        ('{"labels": "abc", "input": {"height": 1, "width": 1}}', "list of strings"),
        ('{"labels": ["a"]}', "no 'input'"),
        ('{"labels": [], "input": {"height": 8, "width": 8}}', "no labels"),
        ('{"labels": ["a", "a"], "input": {"height": 8, "width": 8}}', "duplicate"),
        ('{"labels": ["a"], "input": {"height": 8, "width": 8}, "precision": "int4"}', "int4"),
        ('{"labels": ["a"], "input": {"height": 8, "width": 8, "fit": "zoom"}}', "fit 'zoom'"),
        (
            '{"labels": ["a"], "input": {"height": 8, "width": 8, "color": "gray", "channels": 3}}',
            "needs 1 channel",
        ),
        ('{"labels": ["a"], "input": {"width": 8}}', "invalid input spec"),
    ],
)
def test_invalid_metadata_is_refused_with_the_reason(text, message):
    with pytest.raises(ModelError, match=message):
        ModelSpec.from_json(text)


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
