"""``edgecnn eval``: accuracy, per-class precision / recall / F1 and the confusion matrix.

The same numbers for the artifact users deploy (``.onnx``, run through the edge runtime:
:class:`~edgecnn.runtime.classifier.Classifier`, no TF imported) and for the model they trained
(``.keras`` or a training run folder, run through Keras), so the two can be compared.

Data folder rule: ``DATA_DIR/test/<class>/*`` when a ``test`` folder exists, else
``DATA_DIR/<class>/*``. Class folders must be named like the model's labels (a subset is fine);
a folder that is not a label is an error. Nothing is dropped silently: files that are not
images (by content) and images outside class folders are listed as ``ignored`` (with the
reason), and images that cannot be decoded as ``failures`` (with the error), on the terminal
and in the JSON.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.data.datasets import Labelled, find_images
from edgecnn.errors import DatasetError, EdgecnnError, ModelError
from edgecnn.export.calibration_images import load_images
from edgecnn.tools import plots
from edgecnn.tools.metrics import classification_report, format_report

if TYPE_CHECKING:
    from edgecnn.runtime.classifier import Classifier
    from edgecnn.runtime.engines.base import Engine
    from edgecnn.tools.engine_precision import PrecisionAgreement

Progress = Callable[[int, int], None]
#: The split sub-folder eval prefers when DATA_DIR has one.
EVAL_SPLITS = ("test",)
OUTSIDE_CLASSES = "image outside any class folder"
#: Ignored / unreadable files listed on the terminal (all of them are in the JSON report).
SHOWN = 10


def is_onnx(model: str | Path) -> bool:
    """ONNX models go through the edge runtime; anything else is treated as Keras."""
    return Path(model).suffix.lower() == ".onnx"


def labelled_images(
    data_dir: str | Path, labels: tuple[str, ...]
) -> tuple[list[Labelled], list[dict[str, str]], Path]:
    """(path, label) pairs under the folder rule, the files ignored (path + reason), and the
    folder read. Class folders must be labels of the model."""
    found = find_images(data_dir, EVAL_SPLITS)
    unknown = sorted({label for _, label in found.images if label and label not in labels})
    if unknown:
        shown = ", ".join(labels[:12]) + (" ..." if len(labels) > 12 else "")
        raise DatasetError(
            f"{found.folder}: class folder(s) {', '.join(unknown)} "
            f"are not labels of the model ({shown})"
        )
    items = [item for item in found.images if item[1] is not None]
    ignored = [{"path": str(p), "reason": OUTSIDE_CLASSES} for p, lb in found.images if lb is None]
    ignored += [{"path": path, "reason": reason} for path, reason in found.ignored]
    if not items:
        raise DatasetError(
            f"{data_dir}: no images in class folders; expected DATA_DIR/<class>/* "
            "or DATA_DIR/test/<class>/*"
        )
    return items, ignored, found.folder


def _eval_onnx(
    model: str | Path,
    data_dir: str | Path,
    provider: str,
    threads: int | None,
    batch_size: int,
    progress: Progress | None,
    precision: str = "f32",
) -> tuple[dict[str, Any], list[int], list[int], list[dict[str, str]]]:
    from edgecnn.runtime.classifier import Classifier
    from edgecnn.tools import engine_precision

    # which engine runs bf16 / f16 (and refusing one that cannot) is the registry's rule
    clf = Classifier.load(model, provider=provider, threads=threads, precision=precision)
    labels = clf.spec.labels
    items, ignored, folder = labelled_images(data_dir, labels)
    reference = None if precision == "f32" else engine_precision.open_reference(model)
    try:
        y_true, y_pred, failures, agreement = classify_labelled(
            clf, items, batch_size, progress, reference=reference, precision=precision
        )
    finally:
        if reference is not None:
            reference.close()
    info = {
        "model": str(model),
        "format": "onnx",
        "precision": clf.spec.precision,
        "provider": clf.provider,
        "labels": list(labels),
        "data_dir": str(folder),
        "ignored": ignored,
        "total": len(items),
    }
    if agreement is not None:
        info["engine_precision"] = agreement.to_dict()
    return info, y_true, y_pred, failures


def classify_labelled(
    clf: Classifier,
    items: list[Labelled],
    batch_size: int,
    progress: Progress | None = None,
    *,
    reference: Engine | None = None,
    precision: str = "f32",
) -> tuple[list[int], list[int], list[dict[str, str]], PrecisionAgreement | None]:
    """Classify ``items`` with ``clf`` in one pipeline pass: true and predicted class indices
    of the images read, the failures (path + error), and, with an fp32 ``reference`` engine,
    the agreement of ``clf`` (opened at ``precision``) with it on the very same decoded
    images: each image is decoded once and run once by each engine."""
    from edgecnn.classify.input_discovery import scan
    from edgecnn.runtime.batch_pipeline import BatchModel, Pipeline
    from edgecnn.tools.engine_precision import ComparingModel

    labels = clf.spec.labels
    index = {label: i for i, label in enumerate(labels)}
    model: BatchModel = clf
    if reference is not None:
        model = ComparingModel(clf, reference, [index[label] for _, label in items])
    found = scan([str(path) for path, _ in items])
    predictions = Pipeline(model, batch_size=batch_size).run(found.items)
    y_true, y_pred, failures = [], [], []
    for done, (item, pred) in enumerate(zip(items, predictions, strict=True), start=1):
        if pred.ok:
            y_true.append(index[item[1]])
            y_pred.append(index[pred.label])
        else:
            failures.append({"path": str(item[0]), "error": pred.error or "unknown error"})
        if progress is not None:
            progress(done, len(items))
    agreement = model.agreement(precision) if isinstance(model, ComparingModel) else None
    return y_true, y_pred, failures, agreement


def _eval_keras(
    model: str | Path,
    data_dir: str | Path,
    batch_size: int,
    options: dict[str, Any],
    progress: Progress | None,
) -> tuple[dict[str, Any], list[int], list[int], list[dict[str, str]]]:
    from edgecnn.export import keras_model
    from edgecnn.export.model_source import InputOverrides, resolve_source
    from edgecnn.normalization import Normalization

    source = resolve_source(model, options.get("overrides") or InputOverrides())
    normalization = options.get("normalization") or Normalization()
    kmodel = keras_model.load_keras(source.model_path, unsafe=bool(options.get("unsafe")))
    keras_model.check_model(kmodel, source.input, len(source.labels))
    output = source.output
    if output == "auto":
        output = keras_model.detect_output(kmodel, source.input, normalization)
    items, ignored, folder = labelled_images(data_dir, source.labels)
    index = {label: i for i, label in enumerate(source.labels)}
    y_true, y_pred, failures = [], [], []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        batch, truth, failed = load_images(chunk, source.input)
        failures += [{"path": path, "error": reason} for path, reason in failed]
        if len(batch):
            probs = keras_model.keras_probabilities(kmodel, batch, normalization, output)
            y_true += [index[t] for t in truth if t is not None]
            y_pred += [int(i) for i in probs.argmax(axis=1)]
        if progress is not None:
            progress(min(start + batch_size, len(items)), len(items))
    info = {
        "model": str(model),
        "format": "keras",
        "precision": "keras",
        "provider": "tensorflow",
        "labels": list(source.labels),
        "data_dir": str(folder),
        "ignored": ignored,
        "total": len(items),
    }
    return info, y_true, y_pred, failures


def evaluate(
    model: str | Path,
    data_dir: str | Path,
    *,
    provider: str = "auto",
    threads: int | None = None,
    batch_size: int = 32,
    keras_options: dict[str, Any] | None = None,
    progress: Progress | None = None,
    precision: str = "f32",
) -> dict[str, Any]:
    """Evaluate an ``.onnx`` (edge runtime) or Keras model on a labelled image folder.

    ``precision`` (ONNX only): "bf16" / "f16" evaluate on OpenVINO at that precision and add
    ``engine_precision``: its top-1 agreement with fp32 on the same images.
    ``keras_options`` (Keras only): ``overrides`` (InputOverrides), ``normalization``,
    ``unsafe``. Returns the :func:`edgecnn.tools.metrics.classification_report` dict plus the
    model, data and failure details.
    """
    if not Path(model).exists():
        raise ModelError(f"{model}: no such file or directory")
    started = time.perf_counter()
    if is_onnx(model):
        result = _eval_onnx(model, data_dir, provider, threads, batch_size, progress, precision)
    elif precision != "f32":
        raise EdgecnnError("`precision` applies to .onnx models (engine precision)")
    else:
        result = _eval_keras(model, data_dir, batch_size, keras_options or {}, progress)
    info, y_true, y_pred, failures = result
    total = info.pop("total")
    if not y_true:
        first = f" (first: {failures[0]['path']}: {failures[0]['error']})" if failures else ""
        raise DatasetError(f"{data_dir}: none of the {total} images could be read{first}")
    report = classification_report(y_true, y_pred, info["labels"])
    ignored = info["ignored"]
    report.update(
        {
            **info,
            "failed": len(failures),
            "failures": failures,
            "ignored_unlabelled": sum(1 for i in ignored if i["reason"] == OUTSIDE_CLASSES),
            "seconds": round(time.perf_counter() - started, 3),
        }
    )
    return report


def format_evaluation(report: dict[str, Any]) -> str:
    """Header line + the metrics table (+ a failures line)."""
    head = (
        f"{report['model']} ({report['format']}, {report['precision']}, {report['provider']}) "
        f"on {report['data_dir']}"
    )
    lines = [head, format_report(report)]
    if "engine_precision" in report:
        from edgecnn.tools.engine_precision import PrecisionAgreement

        lines.append(PrecisionAgreement(**report["engine_precision"]).line())
    failures = [(f["path"], f["error"]) for f in report["failures"]]
    ignored = [(i["path"], i["reason"]) for i in report["ignored"]]
    for title, rows in (("unreadable", failures), ("ignored", ignored)):
        if rows:
            lines.append(f"{title}: {len(rows)} file(s) not counted:")
            lines += [f"  {path}: {reason}" for path, reason in rows[:SHOWN]]
            if len(rows) > SHOWN:
                lines.append(f"  ... {len(rows) - SHOWN} more (all in the --json report)")
    return "\n".join(lines)


def plot_confusion(report: dict[str, Any], path: str | Path) -> None:
    """The confusion matrix as a PNG (row-normalised colours, counts written in the cells)."""
    title = f"{os.path.basename(report['model'])}: accuracy {report['accuracy']:.2%}"
    plots.confusion_matrix(path, report["confusion_matrix"], report["labels"], title)
