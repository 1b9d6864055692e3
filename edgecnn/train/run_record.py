"""What a finished run records: ``config.json`` (:class:`RunConfig`), labels, history, the
test-split report and the end-of-training health checks."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import _deps
from edgecnn._version import __version__
from edgecnn.data.datasets import Dataset
from edgecnn.run_config import LABELS_FILE, RunConfig, RunData, RunResult, TrainingSettings
from edgecnn.runtime.prediction import softmax
from edgecnn.tools import model_health, plots
from edgecnn.tools.metrics import classification_report
from edgecnn.tools.report_files import write_json
from edgecnn.train import backbones, history
from edgecnn.train.data_cache import Cache
from edgecnn.train.train_settings import TrainSettings


def write_test_report(
    model: Any,
    caches: dict[str, Cache],
    labels: tuple[str, ...],
    settings: TrainSettings,
    run_dir: Path,
) -> dict[str, Any] | None:
    """With a test split: per-class report + confusion matrix written to the run; else None."""
    if "test" not in caches:
        return None
    report = _evaluate(model, caches["test"], labels, settings.batch_size, settings.arch.output)
    write_json(run_dir / "report.json", report)
    plots.confusion_matrix(
        run_dir / "confusion_matrix.png",
        report["confusion_matrix"],
        labels,
        f"test accuracy {report['accuracy']:.3f}",
    )
    return report


def run_config(
    settings: TrainSettings,
    dataset: Dataset,
    caches: dict[str, Cache],
    rows: list[dict[str, float]],
    best: int,
    test_report: dict[str, Any] | None,
    model: Any,
    seconds: float,
    data_dir: str | Path,
    problems: tuple[str, ...] = (),
) -> RunConfig:
    """The run's ``config.json``: what export needs plus every setting and the data counts."""
    labels = dataset.labels
    test = caches.get("test")
    return RunConfig(
        labels=labels,
        input=settings.input,
        output=settings.arch.output,
        architecture=settings.arch.name,
        settings=TrainingSettings(
            seed=settings.seed,
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            optimizer=settings.optimizer,
            learning_rate=settings.learning_rate,
            loss=settings.arch.loss,
            lr_schedule="plateau",
            patience=settings.patience,
            min_delta=settings.min_delta,
            start_from_epoch=settings.start_from_epoch,
            lr_patience=settings.lr_patience,
            lr_factor=settings.lr_factor,
            weights=settings.weights,
            head_epochs=settings.head_epochs,
            fine_tune_learning_rate=(
                settings.learning_rate * backbones.FINE_TUNE_LR_FACTOR
                if settings.head_epochs
                else None
            ),
            monitor=settings.monitor,
            augment=dict(settings.augment),
            val_split=settings.val_split,
            test_split=settings.test_split,
        ),
        data=RunData(
            dir=str(Path(data_dir).resolve()),
            layout=dataset.layout,
            counts={
                s: {lb: int(np.sum(c.targets == i)) for i, lb in enumerate(labels)}
                for s, c in caches.items()
            },
            skipped=tuple(s for c in caches.values() for s in c.skipped),
            ignored=tuple(dataset.ignored),
        ),
        validation=_pairs(caches["validation"]),
        test=_pairs(test) if test is not None else (),
        result=RunResult(
            val_accuracy=rows[best]["val_accuracy"],
            val_loss=rows[best]["val_loss"],
            best_epoch=best + 1,
            epochs_run=len(rows),
            train_images=len(caches["train"]),
            validation_images=len(caches["validation"]),
            test_images=len(test) if test is not None else 0,
            test_accuracy=test_report["accuracy"] if test_report else None,
            parameters=int(model.count_params()),
            seconds=round(seconds, 2),
            warnings=problems,
        ),
        edgecnn_version=__version__,
        versions={"keras": _deps.keras().__version__, "tensorflow": _tf_version()},
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def health(
    model: Any, cache: Cache, labels: tuple[str, ...], settings: TrainSettings
) -> tuple[str, ...]:
    """End-of-training checks on the validation images with the kept (best) weights: outputs
    that do not depend on the input, and accuracy near chance (a run too short to learn)."""
    scores = model.predict(
        cache.images.astype(np.float32), batch_size=settings.batch_size, verbose=0
    )
    probs = softmax(scores) if settings.arch.output == "logits" else np.asarray(scores)
    accuracy = float((probs.argmax(axis=1) == cache.targets).mean())
    found = [
        model_health.output_problem(probs),
        model_health.accuracy_problem(accuracy, cache.targets, len(labels)),
    ]
    return tuple(f"validation {line}" for line in found if line)


def write_run(
    run_dir: Path,
    config: RunConfig,
    rows: list[dict[str, float]],
    best: int,
    settings: TrainSettings,
) -> None:
    """labels.json, config.json, history.csv and history.png beside the saved model."""
    write_json(run_dir / LABELS_FILE, {"labels": list(config.labels)})
    config.write(run_dir)
    history.write_history_csv(run_dir / "history.csv", rows)
    history.plot_history(
        run_dir / "history.png",
        rows,
        f"{settings.arch.name}: best {settings.monitor} at epoch {best + 1}",
    )


def _evaluate(
    model: Any, cache: Cache, labels: tuple[str, ...], batch_size: int, output: str
) -> dict[str, Any]:
    """Per-class report on a split with the restored best weights."""
    scores = model.predict(cache.images.astype(np.float32), batch_size=batch_size, verbose=0)
    predicted = np.argmax(scores, axis=1)
    result = classification_report(cache.targets, predicted, labels)
    result["output"] = output
    result["files"] = [
        {"path": p, "true": labels[t], "predicted": labels[int(q)]}
        for p, t, q in zip(cache.paths, cache.targets, predicted, strict=True)
        if t != q
    ]
    return result


def _pairs(cache: Cache) -> tuple[tuple[str, int], ...]:
    return tuple((str(p), int(t)) for p, t in zip(cache.paths, cache.targets, strict=True))


def _tf_version() -> str:
    import tensorflow as tf

    return tf.__version__
