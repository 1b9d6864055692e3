"""The README's Quick start data: the bundled model and the sample images, end to end."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from click.testing import CliRunner

import edgecnn
from edgecnn.cli import cli

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "images"


def test_bundled_model_classifies_every_sample_correctly():
    result = CliRunner().invoke(cli, ["classify", str(SAMPLES), "-o", "-", "-q"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == len(list(SAMPLES.iterdir())) >= 8
    for row in rows:
        assert row["status"] == "ok"
        assert row["label"] == Path(row["path"]).stem.split("-")[0], row  # circle-1.jpg


def test_bundled_models_follow_the_contract():
    clf = edgecnn.Classifier.load(provider="cpu")
    assert clf.path.endswith("shapes-int8.onnx")
    assert clf.spec.precision == "int8-static"
    assert clf.labels == ("circle", "square", "star", "triangle")
    fp32 = edgecnn.Classifier.load(edgecnn.default_model_path("cpu").with_name("shapes-fp32.onnx"))
    assert fp32.spec.precision == "fp32" and fp32.spec.input == clf.spec.input
    assert fp32.spec.verification, "export records its parity check in the metadata"
