"""``edgecnn info [MODEL.onnx]``: what an edgecnn model carries (no TensorFlow, no onnx package)."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from edgecnn.model_files import onnx_header
from edgecnn.printable import printable


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items() if v is not None)
    return str(value)


@click.command("info")
@click.argument("model", required=False, type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the metadata JSON only.")
def info(model: str | None, as_json: bool) -> None:
    """Labels, input spec, precision, opset, size, provenance and parity of MODEL.

    Without MODEL: the bundled default model.
    """
    from edgecnn.runtime.classifier import Classifier
    from edgecnn.runtime.providers import create_session
    from edgecnn.spec import METADATA_KEY

    header = onnx_header(model) if model is not None and os.path.isfile(model) else {}
    if (
        model is not None
        and header.get("opsets")
        and METADATA_KEY not in header.get("metadata_keys", ())
    ):
        session, _ = create_session(model, "cpu", 1)  # a usable model, without edgecnn metadata
        _foreign(model, session, as_json)
        return
    clf = Classifier.load(model, provider="cpu", threads=1)
    spec = clf.spec
    data = spec.to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    export = data.get("export") or {}
    s = spec.input
    rows = [
        ("file", f"{clf.path} ({os.path.getsize(clf.path) / 1e6:.2f} MB)"),
        ("labels", f"{spec.num_classes}: {', '.join(spec.labels)}"),
        ("input", f"{clf.input_name} {clf.input_type} {clf.input_shape}: "
                  f"{s.height}x{s.width}x{s.channels} {s.color}, fit {s.fit}, {s.interpolation}"),
        ("output", f"{clf.output_name} {clf.output_type} {clf.output_shape}"),
        ("precision", spec.precision),
        ("opset", str(export.get("opset") or onnx_header(clf.path)["opsets"].get("ai.onnx", "?"))),
        ("architecture", spec.architecture or "unknown"),
        ("created", f"{spec.created or 'unknown'} by edgecnn {spec.edgecnn_version or '?'}"),
    ]  # fmt: skip
    if export.get("source_model"):
        rows.append(("exported from", f"{export['source_model']} (sha256 "
                                      f"{str(export.get('source_sha256', ''))[:12]})"))  # fmt: skip
    if export.get("normalization"):
        rows.append(("normalization", _fmt(export["normalization"])))
    if spec.training:
        rows.append(("training", _fmt(spec.training)))
    if spec.quantization:
        rows.append(("quantization", _fmt(spec.quantization)))
    if spec.verification:
        rows.append(("verification", _fmt(spec.verification)))
    width = max(len(k) for k, _ in rows)
    click.echo("\n".join(f"{k:<{width}}  {printable(v)}" for k, v in rows))


def _foreign(model: str, session: Any, as_json: bool) -> None:
    """What can be told of an ONNX model without edgecnn metadata: tensors, opset, size."""
    from edgecnn.cli.classify import classify
    from edgecnn.cli.flags import cli_message
    from edgecnn.runtime.classifier import FOREIGN_FLAGS

    header = onnx_header(model)
    data = {
        "edgecnn": None,
        "file": model,
        "bytes": os.path.getsize(model),
        "inputs": [
            {"name": t.name, "type": t.type, "shape": t.shape} for t in session.get_inputs()
        ],
        "outputs": [
            {"name": t.name, "type": t.type, "shape": t.shape} for t in session.get_outputs()
        ],
        "opsets": header["opsets"],
        "ir_version": header.get("ir_version"),
        "producer": " ".join(
            p for p in (header.get("producer"), header.get("producer_version")) if p
        ),
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    rows = [("file", f"{model} ({data['bytes'] / 1e6:.2f} MB)")]
    rows += [("input", f"{t['name']} {t['type']} {t['shape']}") for t in data["inputs"]]
    rows += [("output", f"{t['name']} {t['type']} {t['shape']}") for t in data["outputs"]]
    rows += [
        ("opset", str(data["opsets"].get("ai.onnx", "?"))),
        ("ir version", str(data["ir_version"] or "?")),
        ("producer", data["producer"] or "unknown"),
        (
            "edgecnn",
            f"no edgecnn metadata (exported elsewhere): run it with "
            f"{cli_message(FOREIGN_FLAGS, classify)}",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    click.echo("\n".join(f"{k:<{width}}  {printable(v)}" for k, v in rows))
