"""``export_model``: Keras file -> converted, quantized, verified, self-describing ONNX file.

Order matters: the destination is checked first (fail before minutes of work), the fp32 graph is
always verified against Keras (every other precision is derived from it), a quantized graph is
verified against both, and only a graph that passed the gates gets its metadata and is written.
"""

from __future__ import annotations

import datetime as _dt
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import _deps
from edgecnn._version import __version__
from edgecnn.data.datasets import Labelled, find_images
from edgecnn.errors import DatasetError, ExportError
from edgecnn.export import artifact, calibration_images, convert, keras_process, quantize, verify
from edgecnn.export.export_report import (
    check_engine_precision,
    engine_agreement,
    format_table,
    measure_latency,
)
from edgecnn.export.model_source import InputOverrides, ModelSource, resolve_source
from edgecnn.normalization import Normalization
from edgecnn.spec import ModelSpec
from edgecnn.tools import model_health
from edgecnn.tools.machine import sha256
from edgecnn.tools.report_files import to_json

#: CLI precision names -> the precision recorded in the metadata.
PRECISIONS = {
    "fp32": "fp32",
    "fp16": "fp16",
    "int8-dynamic": "int8-dynamic",
    "int8": "int8-static",
    "int8-static": "int8-static",
}
NOISE_IMAGES = 64
Log = Callable[[str], None]


@dataclass(frozen=True)
class ExportOptions:
    """Everything ``edgecnn export`` can be told; the defaults are the recommended export."""

    precision: str = "fp32"
    overrides: InputOverrides = field(default_factory=InputOverrides)
    normalization: Normalization = field(default_factory=Normalization)
    calibration: str | Path | None = None
    calibration_count: int = 300
    verify: str | Path | None = None
    verify_count: int = 1000
    quant: quantize.QuantSettings = field(default_factory=quantize.QuantSettings)
    max_accuracy_drop: float = 1.0
    force: bool = False
    unsafe: bool = False
    opset: int = convert.DEFAULT_OPSET
    latency: bool = True
    report: bool = True
    #: ``bf16`` / ``f16``: also report OpenVINO's top-1 agreement with fp32 at that precision
    engine_precision: str | None = None


@dataclass(frozen=True)
class ExportResult:
    """What was written: the model path, its spec, the report (also in ``OUT.report.json``)."""

    path: Path
    spec: ModelSpec
    report: dict[str, Any]
    report_path: Path | None

    def table(self) -> str:
        """The terminal summary."""
        return format_table(self.report)


def shown_path(path: str | Path) -> str:
    """The last two components of a folder (``data/test``): the metadata travels with the
    model to other machines, the build machine's absolute paths must not."""
    return Path(*Path(path).parts[-2:]).as_posix()


def _folder_images(
    folder: str | Path,
    prefer: tuple[str, ...],
    source: ModelSource,
    count: int,
    what: str,
    warnings: list[str],
) -> tuple[list[Labelled], str]:
    try:
        found = find_images(folder, prefer, source.labels)
    except DatasetError as exc:
        raise ExportError(f"{what}: {exc}") from exc
    if found.ignored:
        warnings.append(
            f"{what}: ignored {len(found.ignored)} file(s) that are not images, "
            f"e.g. {found.ignored[0][0]}"
        )
    return calibration_images.sample_evenly(found.images, count), shown_path(found.folder)


def _load(
    items: list[Labelled], source: ModelSource, what: str, warnings: list[str]
) -> tuple[np.ndarray, list[str | None]]:
    batch, truth, failures = calibration_images.load_images(items, source.input)
    if failures and not len(batch):
        path, reason = failures[0]
        raise ExportError(
            f"{what}: none of the {len(failures)} file(s) could be read as images "
            f"(first: {path}: {reason})"
        )
    if failures:
        warnings.append(
            f"{what}: skipped {len(failures)} unreadable file(s), e.g. {failures[0][0]}"
        )
    return batch, truth


def _calibration_set(
    source: ModelSource, options: ExportOptions, warnings: list[str]
) -> tuple[np.ndarray, str]:
    if options.calibration is not None:
        items, where = _folder_images(
            options.calibration,
            calibration_images.CALIBRATION_SPLITS,
            source,
            options.calibration_count,
            "`calibration`",
            warnings,
        )
    elif source.validation:
        items = calibration_images.sample_evenly(list(source.validation), options.calibration_count)
        where = "the run's validation files"
    else:
        raise ExportError(
            "int8 (static) quantization needs calibration images: pass `calibration` DIR "
            "(a few hundred images like the ones the model will see)"
        )
    batch, _ = _load(items, source, "`calibration`", warnings)
    return batch, where


def _verification_set(
    source: ModelSource,
    options: ExportOptions,
    warnings: list[str],
) -> tuple[np.ndarray, list[str | None], str]:
    if options.verify is not None:
        items, where = _folder_images(
            options.verify,
            calibration_images.VERIFY_SPLITS,
            source,
            options.verify_count,
            "`verify`",
            warnings,
        )
    elif source.validation or source.test:
        items = calibration_images.sample_evenly(
            list(source.validation or source.test), options.verify_count
        )
        where = "the run's " + ("validation" if source.validation else "test") + " files"
    elif options.calibration is not None:
        items, where = _folder_images(
            options.calibration,
            calibration_images.VERIFY_SPLITS,
            source,
            options.verify_count,
            "`calibration`",
            warnings,
        )
        where += " (calibration folder)"
    else:
        warnings.append(
            "no `verify` images: parity was checked on random noise only, accuracy unknown"
        )
        rng = np.random.default_rng(0)
        noise = rng.integers(0, 256, (NOISE_IMAGES, *source.input.shape), dtype=np.uint8)
        return noise, [None] * NOISE_IMAGES, "random noise"
    batch, truth = _load(items, source, "`verify`", warnings)
    return batch, truth, where


def _derive(
    precision: str,
    fp32: Any,
    source: ModelSource,
    options: ExportOptions,
    warnings: list[str],
) -> tuple[Any, dict[str, Any] | None]:
    """The graph for the requested precision and its quantization record."""
    if precision == "fp32":
        return fp32, None
    if precision == "fp16":
        return quantize.to_fp16(fp32), None
    settings = options.quant.resolved()
    record: dict[str, Any] = {"format": "QDQ" if precision == "int8-static" else "dynamic"}
    record.update(settings.to_dict())
    if precision == "int8-dynamic":
        record.pop("activations")
        record.pop("method")
        return quantize.quantize_dynamic(fp32, settings), record
    calib = _calibration_set(source, options, warnings)
    record["calibration_images"] = len(calib[0])
    record["calibration_source"] = calib[1]
    return quantize.quantize_static(fp32, calib[0], settings), record


@dataclass
class _Verified:
    """The verification of one export: parity vs Keras (and vs fp32), the sessions used."""

    where: str
    parity: dict[str, Any]
    fp32_parity: dict[str, Any]
    session: Any
    fp32_session: Any
    fp32_size: int

    def record(self, precision: str) -> dict[str, Any]:
        """The ``verification`` object of the metadata."""
        parity = self.parity
        record = {
            "source": self.where,
            "images": parity["images"],
            "labelled": parity["labelled"],
            "top1_agreement": round(parity["top1_agreement"], 6),
            "max_abs_diff": float(f"{parity['max_abs_diff']:.3g}"),
            "accuracy_keras": parity["accuracy_reference"],
            "accuracy": parity["accuracy"],
        }
        if precision != "fp32":
            record["fp32_top1_agreement"] = round(self.fp32_parity["top1_agreement"], 6)
        return record


@dataclass
class _Reference:
    """The verification images and the Keras model's probabilities on them."""

    images: np.ndarray
    truth: list[str | None]
    where: str
    probabilities: np.ndarray


def _reference_warnings(
    probs: np.ndarray, truth: list[str | None], source: ModelSource, warnings: list[str]
) -> None:
    """Warnings from Keras' outputs on the verification images: a dead model written because
    of ``force`` (without it the Keras step refused it), accuracy near chance."""
    problem = model_health.output_problem(probs)
    if problem:
        warnings.append(f"the model looks dead: {problem}; written anyway because of --force")
    index = {label: i for i, label in enumerate(source.labels)}
    known = [(row, index[t]) for row, t in enumerate(truth) if t is not None and t in index]
    if known:
        rows, targets = (np.array(v) for v in zip(*known, strict=True))
        accuracy = float((probs[rows].argmax(axis=1) == targets).mean())
        line = model_health.accuracy_problem(accuracy, targets, len(source.labels))
        if line:
            warnings.append(f"Keras {line}")


def _keras_half(
    source: ModelSource, options: ExportOptions, folder: Path, warnings: list[str], say: Log
) -> tuple[_Reference, keras_process.KerasHalf]:
    """Keras on the verification images and the fp32 ONNX file, from a child process (this
    process never imports TensorFlow, see :mod:`edgecnn.export.keras_process`)."""
    images_, truth, where = _verification_set(source, options, warnings)
    job = keras_process.KerasJob(
        model_path=str(source.model_path),
        unsafe=options.unsafe,
        input=source.input.to_dict(),
        num_labels=len(source.labels),
        output=source.output,
        normalization=options.normalization.to_dict(),
        opset=options.opset,
        force=options.force,
        images_source=where,
    )
    half = keras_process.run_keras_half(job, images_, folder, say)
    _reference_warnings(half.probabilities, truth, source, warnings)
    return _Reference(images_, truth, where, half.probabilities), half


def export_model(
    model: str | Path,
    output: str | Path,
    options: ExportOptions | None = None,
    log: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a Keras model (file or training run folder) to one verified ``.onnx`` file."""
    options = options or ExportOptions()
    say = log or (lambda _msg: None)
    if options.precision not in PRECISIONS:
        raise ExportError(
            f"precision {options.precision!r} is not one of fp32, fp16, int8-dynamic, int8"
        )
    precision = PRECISIONS[options.precision]
    check_engine_precision(options.engine_precision)  # before minutes of work
    out = artifact.check_destination(output)
    source = resolve_source(model, options.overrides)
    options.normalization.check_channels(source.input.channels)
    warnings: list[str] = []

    with tempfile.TemporaryDirectory(prefix="edgecnn-export-") as tmp:
        reference, half = _keras_half(source, options, Path(tmp), warnings, say)
        fp32 = _deps.onnx().load(str(half.onnx_path))
    output_kind = half.output_kind
    graph, quant_record = _derive(precision, fp32, source, options, warnings)
    if precision != "fp32":
        say(f"{precision}: graph ready")
    verified = _verify(
        reference, fp32, graph, precision, source, options, warnings, quant_record, say
    )
    spec = _model_spec(source, precision, quant_record, verified.record(precision))
    record = _export_record(source, options, output_kind, half.versions)
    spec = replace(spec, extra={"export": record})
    artifact.set_metadata(graph, spec)
    data = artifact.serialize_checked(graph)
    artifact.write_atomic(out, data)
    say(f"wrote {out} ({len(data) / 1e6:.2f} MB)")
    report = _report(out, data, precision, source, spec, verified, quant_record, warnings)
    _measure(report, verified, precision, source, options, say)
    if options.engine_precision:
        say(f"engine precision {options.engine_precision}: OpenVINO against fp32")
        report["engine_precision"] = engine_agreement(
            out, options.engine_precision, reference.images, reference.truth, source.labels
        )
    report_path = _write_report(out, report) if options.report else None
    return ExportResult(path=out, spec=spec, report=report, report_path=report_path)


def _verify(
    reference: _Reference,
    fp32: Any,
    graph: Any,
    precision: str,
    source: ModelSource,
    options: ExportOptions,
    warnings: list[str],
    quant_record: dict[str, Any] | None,
    say: Log,
) -> _Verified:
    """fp32 against Keras (always), a derived graph against both; the gates refuse failures."""
    images_, truth, where = reference.images, reference.truth, reference.where
    say(f"verifying on {len(images_)} images ({where})")
    fp32_bytes = fp32.SerializeToString()
    fp32_size = len(fp32_bytes)
    fp32_sess = verify.session(fp32_bytes)
    del fp32_bytes  # the session holds its own copy of the weights
    fp32_probs = verify.onnx_probabilities(fp32_sess, images_)
    fp32_parity = verify.compare(reference.probabilities, fp32_probs, truth, source.labels)
    verify.check_fp32(fp32_parity)
    if precision == "fp32":
        return _Verified(where, fp32_parity, fp32_parity, fp32_sess, fp32_sess, fp32_size)
    sess = verify.session(graph.SerializeToString())
    probs = verify.onnx_probabilities(sess, images_)
    parity = verify.compare(reference.probabilities, probs, truth, source.labels)
    versus_fp32 = verify.compare(fp32_probs, probs, truth, source.labels)
    warning = verify.check_quantized(parity, precision, options.max_accuracy_drop, options.force)
    if warning:
        warnings.append(warning)
    if quant_record is not None:
        quant_record["top1_agreement_vs_fp32"] = round(versus_fp32["top1_agreement"], 6)
    return _Verified(where, parity, fp32_parity, sess, fp32_sess, fp32_size)


def _model_spec(
    source: ModelSource,
    precision: str,
    quant_record: dict[str, Any] | None,
    verification: dict[str, Any],
) -> ModelSpec:
    """The metadata the exported file carries (the artifact contract)."""
    return ModelSpec(
        labels=source.labels,
        input=source.input,
        precision=precision,
        architecture=source.architecture,
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        edgecnn_version=__version__,
        training=dict(source.training),
        quantization=quant_record,
        verification=verification,
    )


def _export_record(
    source: ModelSource, options: ExportOptions, output_kind: str, versions: dict[str, str]
) -> dict:
    """How the file was made: opset, source file and hash, output handling, tool versions."""
    return {
        "opset": options.opset,
        "source_model": source.model_path.name,
        "source_sha256": sha256(source.model_path),
        "keras_output": output_kind,
        "softmax_appended": output_kind == "logits",
        "normalization": options.normalization.to_dict(),
        "tf2onnx": versions["tf2onnx"],
        "keras": versions["keras"],
    }


def _report(
    out: Path,
    data: bytes,
    precision: str,
    source: ModelSource,
    spec: ModelSpec,
    verified: _Verified,
    quant_record: dict[str, Any] | None,
    warnings: list[str],
) -> dict[str, Any]:
    """The export report (``OUT.report.json`` and the terminal table)."""
    return {
        "output": str(out),
        "precision": precision,
        "size_bytes": len(data),
        "opset": spec.extra["export"]["opset"],
        "labels": list(source.labels),
        "input": spec.to_dict()["input"],
        "verification": {
            **(spec.verification or {}),
            "row_sum_error": verified.parity["row_sum_error"],
        },
        "fp32_parity": verified.fp32_parity if precision != "fp32" else None,
        "quantization": quant_record,
        "warnings": warnings,
    }


def _measure(
    report: dict[str, Any],
    verified: _Verified,
    precision: str,
    source: ModelSource,
    options: ExportOptions,
    say: Log,
) -> None:
    """Latency of the written graph (and of fp32 beside it) into the report, if asked."""
    if not options.latency:
        report["latency"] = None
        return
    say("measuring latency")
    report["latency"] = measure_latency(verified.session, source.input)
    if precision != "fp32":
        report["fp32_latency"] = measure_latency(verified.fp32_session, source.input)
        report["fp32_size_bytes"] = verified.fp32_size


def _write_report(out: Path, report: dict[str, Any]) -> Path:
    """``OUT.report.json`` beside the model (``model.onnx`` -> ``model.report.json``)."""
    report_path = out.with_name(out.name + ".report.json")
    if out.suffix == ".onnx":
        report_path = out.with_suffix(".report.json")
    artifact.write_atomic(report_path, to_json(report).encode())
    return report_path
