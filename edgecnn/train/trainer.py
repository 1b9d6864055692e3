"""``train()``: image folder -> RUN_DIR with the best Keras model and everything export needs.

RUN_DIR receives ``model.keras`` (best weights), ``labels.json``, ``config.json`` (the interface
``edgecnn export`` reads: input spec, labels, output kind, every setting, data counts, the
validation / test files), ``history.csv``, ``history.png`` and, with a test split,
``report.json`` + ``confusion_matrix.png``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import _deps
from edgecnn._version import __version__
from edgecnn.data.datasets import Dataset, discover, resolve_splits
from edgecnn.errors import DatasetError, EdgecnnError
from edgecnn.run_config import LABELS_FILE, RunConfig, RunData, RunResult, TrainingSettings
from edgecnn.runtime.prediction import softmax
from edgecnn.spec import InputSpec
from edgecnn.tools import model_health, plots
from edgecnn.tools.metrics import classification_report
from edgecnn.tools.report_files import write_json
from edgecnn.train import backbones, history
from edgecnn.train.architectures import (
    Architecture,
    build_model,
    get_architecture,
    make_loss,
    make_optimizer,
)
from edgecnn.train.data_cache import Cache, build_cache, make_augmenter, make_dataset, parse_augment

#: Files a run writes; ``force=True`` removes exactly these before training.
RUN_FILES = (
    "model.keras",
    "labels.json",
    "config.json",
    "history.csv",
    "history.png",
    "report.json",
    "confusion_matrix.png",
)
MONITORS = ("val_accuracy", "val_loss")
#: The resize used by training (and therefore by every later step): area for downscaling.
INTERPOLATION = "area"

Log = Callable[[str], None]
#: Early stopping: a change smaller than this (accuracy or loss) is no improvement.
MIN_DELTA = 1e-3
#: On a plateau the learning rate is multiplied by this (down to 1/100 of the start).
LR_FACTOR = 0.5


def stopping_schedule(arch_patience: int, epochs: int, patience: int | None) -> dict[str, int]:
    """Patience, first epoch early stopping may count from, and the plateau's LR patience.

    A small validation set is noisy: a fixed patience of 3 cut a still-improving 15-epoch run at
    epoch 8. So, unless the caller set a patience, it grows with the budget (a quarter of the
    epochs, at least the architecture's), stopping is only considered in the second half of the
    budget, and the learning rate is halved after half the patience without improvement, so a
    plateau first gets a smaller step before the run is stopped. ``patience=0``: never stop.
    """
    if patience is None:
        patience = max(arch_patience, math.ceil(epochs / 4))
    lr_patience = max(1, (patience or max(arch_patience, math.ceil(epochs / 4))) // 2)
    return {"patience": patience, "start_from_epoch": epochs // 2, "lr_patience": lr_patience}


@dataclass
class TrainResult:
    """What a finished run produced and how well it did."""

    run_dir: Path
    model_path: Path
    labels: tuple[str, ...]
    input: InputSpec
    val_accuracy: float
    best_epoch: int
    epochs_run: int
    seconds: float
    test_report: dict[str, Any] | None
    skipped: list[tuple[str, str]]
    history: list[dict[str, float]]
    config: RunConfig = field(repr=False)


def _quiet(_: str) -> None:
    return None


def prepare_run_dir(out: str | Path, force: bool) -> Path:
    """Create RUN_DIR; refuse one holding a model unless ``force`` (which clears run files)."""
    run_dir = Path(out)
    if run_dir.exists() and not run_dir.is_dir():
        raise EdgecnnError(f"{run_dir}: exists and is not a folder")
    if (run_dir / "model.keras").exists() and not force:
        raise EdgecnnError(
            f"{run_dir}: already holds a trained model (model.keras); "
            "use `force` to overwrite it or choose another `out`"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    return run_dir


@dataclass(frozen=True)
class TrainSettings:
    """Every training option after the architecture's defaults filled the gaps (validated)."""

    arch: Architecture
    input: InputSpec
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str
    patience: int
    monitor: str
    augment: dict[str, float]
    val_split: float
    test_split: float
    seed: int
    workers: int | None
    min_delta: float = MIN_DELTA
    start_from_epoch: int = 0
    lr_patience: int = 1
    lr_factor: float = LR_FACTOR
    weights: str | None = None  # backbones only: imagenet, none or a file
    head_epochs: int = 0  # backbones only: epochs before the top of the backbone is unfrozen

    @property
    def mode(self) -> str:
        """``max`` for an accuracy monitor, ``min`` for a loss."""
        return "max" if self.monitor.endswith("accuracy") else "min"


def train(
    data_dir: str | Path,
    arch: str = "edge",
    out: str | Path = "runs/edge",
    *,
    input_size: tuple[int, int] | None = None,
    color: str | None = None,
    num_classes: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    optimizer: str | None = None,
    patience: int | None = None,
    monitor: str | None = None,
    augment: str | dict[str, float] | None = None,
    val_split: float = 0.2,
    test_split: float = 0.0,
    seed: int = 42,
    workers: int | None = None,
    weights: str | None = None,
    force: bool = False,
    log: Log | None = None,
    warn: Log | None = None,
) -> TrainResult:
    """Train ``arch`` on the image folder ``data_dir`` and write the run to ``out``.

    Options left as None take the architecture's tutorial defaults. ``weights`` (imagenet by
    default, none, or a weights file) is for the transfer-learning backbones. ``log`` receives
    progress lines (one per epoch), ``warn`` the skipped files and end-of-training warnings;
    both are silent when None.
    """
    log, warn = log or _quiet, warn or _quiet
    started = time.perf_counter()
    settings = resolve_settings(
        arch,
        input_size=input_size,
        color=color,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        optimizer=optimizer,
        patience=patience,
        monitor=monitor,
        augment=augment,
        val_split=val_split,
        test_split=test_split,
        seed=seed,
        workers=workers,
        weights=weights,
    )
    dataset, splits = _load_splits(data_dir, settings, num_classes)
    run_dir = prepare_run_dir(out, force)
    keras = _deps.keras()
    keras.utils.set_random_seed(seed)
    # the model first: a backbone whose weights cannot be found fails before minutes of decoding
    model = _compiled_model(settings, len(dataset.labels))
    caches = _build_caches(splits, settings, run_dir, log, warn)
    _check_caches(caches, dataset.labels)
    rows = _fit(keras, model, caches, settings, run_dir, log)
    model.save(run_dir / "model.keras")  # best weights (restored by EarlyStopping)
    scores = [r[settings.monitor] for r in rows]
    best = int(np.nanargmax(scores) if settings.mode == "max" else np.nanargmin(scores))
    test_report = _test_report(model, caches, dataset.labels, settings, run_dir)
    problems = _health(model, caches["validation"], dataset.labels, settings)
    for line in problems:
        warn(f"warning: {line}")
    seconds = time.perf_counter() - started
    config = _run_config(
        settings, dataset, caches, rows, best, test_report, model, seconds, data_dir, problems
    )
    _write_run(run_dir, config, rows, best, settings)
    for split in caches:
        (run_dir / f".cache-{split}.npy").unlink(missing_ok=True)
    return TrainResult(
        run_dir=run_dir,
        model_path=run_dir / "model.keras",
        labels=dataset.labels,
        input=settings.input,
        val_accuracy=float(rows[best]["val_accuracy"]),
        best_epoch=best + 1,
        epochs_run=len(rows),
        seconds=seconds,
        test_report=test_report,
        skipped=list(config.data.skipped) if config.data else [],
        history=rows,
        config=config,
    )


def resolve_settings(
    arch: str,
    *,
    input_size: tuple[int, int] | None = None,
    color: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    optimizer: str | None = None,
    patience: int | None = None,
    monitor: str | None = None,
    augment: str | dict[str, float] | None = None,
    val_split: float = 0.2,
    test_split: float = 0.0,
    seed: int = 42,
    workers: int | None = None,
    weights: str | None = None,
) -> TrainSettings:
    """Fill the options left as None from the architecture and check them (before any work)."""
    spec_arch = get_architecture(arch)
    color = color or spec_arch.color
    height, width = input_size or spec_arch.input_size
    spec = InputSpec(height, width, 1 if color == "gray" else 3, color, "crop", INTERPOLATION)
    epochs = epochs if epochs is not None else spec_arch.epochs
    schedule = stopping_schedule(spec_arch.patience, epochs, patience)
    settings = TrainSettings(
        arch=spec_arch,
        input=spec,
        epochs=epochs,
        batch_size=batch_size or spec_arch.batch_size,
        learning_rate=learning_rate or spec_arch.learning_rate,
        optimizer=optimizer or spec_arch.optimizer,
        patience=schedule["patience"],
        start_from_epoch=schedule["start_from_epoch"],
        lr_patience=schedule["lr_patience"],
        weights=(weights or "imagenet") if spec_arch.backbone else None,
        head_epochs=min(spec_arch.head_epochs, epochs - 1) if spec_arch.backbone else 0,
        monitor=monitor or spec_arch.monitor,
        augment={},
        val_split=val_split,
        test_split=test_split,
        seed=seed,
        workers=workers,
    )
    if weights is not None and not spec_arch.backbone:
        raise EdgecnnError(
            f"`weights` applies to the transfer-learning architectures, not {spec_arch.name!r}"
        )
    if settings.monitor not in MONITORS:
        raise EdgecnnError(f"`monitor` {settings.monitor!r} is not one of {', '.join(MONITORS)}")
    if (
        settings.epochs < 1
        or settings.batch_size < 1
        or settings.learning_rate <= 0
        or settings.patience < 0
    ):
        raise EdgecnnError("epochs and batch size must be >= 1, learning rate > 0, patience >= 0")
    try:
        aug = augment if isinstance(augment, dict) else parse_augment(augment, spec_arch.augment)
    except ValueError as exc:
        raise EdgecnnError(str(exc)) from None
    return dataclasses.replace(settings, augment=aug)


def _load_splits(
    data_dir: str | Path, settings: TrainSettings, num_classes: int | None
) -> tuple[Dataset, dict[str, list[tuple[Path, int]]]]:
    """Discover the class folders and split them; refuse a class count or split that cannot work."""
    dataset = discover(data_dir)
    labels = dataset.labels
    if num_classes is not None and num_classes != len(labels):
        raise DatasetError(
            f"`num_classes` {num_classes} but {dataset.root} has {len(labels)} class folders "
            f"({', '.join(labels)}); the head always matches the class folders"
        )
    splits = resolve_splits(dataset, settings.val_split, settings.test_split, settings.seed)
    if not splits["validation"]:
        raise DatasetError(
            f"{dataset.root}: no validation images; add a validation/ folder or use `val_split`"
        )
    return dataset, splits


def _build_caches(
    splits: dict[str, list[tuple[Path, int]]],
    settings: TrainSettings,
    run_dir: Path,
    log: Log,
    warn: Log,
) -> dict[str, Cache]:
    """Decode every split once into uint8 arrays with the model's spec (the runtime's pixels)."""
    spec = settings.input
    caches: dict[str, Cache] = {}
    for split in ("train", "validation", "test"):
        if not splits[split]:
            continue
        t0 = time.perf_counter()
        cache = build_cache(
            splits[split],
            spec,
            workers=settings.workers,
            memmap_path=run_dir / f".cache-{split}.npy",
        )
        for path, reason in cache.skipped:
            warn(f"skipped {path}: {reason}")
        log(
            f"{split}: {len(cache)} images cached at {spec.height}x{spec.width}x{spec.channels} "
            f"in {time.perf_counter() - t0:.1f}s"
            + (f" ({len(cache.skipped)} unreadable, skipped)" if cache.skipped else "")
        )
        caches[split] = cache
    return caches


def _compiled_model(settings: TrainSettings, num_classes: int) -> Any:
    """The architecture with a ``num_classes`` head, compiled with the run's optimizer and loss."""
    spec = settings.input
    model = build_model(
        settings.arch,
        num_classes,
        (spec.height, spec.width),
        spec.channels,
        weights=settings.weights or "imagenet",
    )
    model.compile(
        optimizer=make_optimizer(settings.optimizer, settings.learning_rate),
        loss=make_loss(settings.arch.loss),
        metrics=["accuracy"],
    )
    return model


def _callbacks(
    keras: Any, settings: TrainSettings, run_dir: Path, rows: list[dict[str, float]], log: Log
) -> list[Any]:
    """Per-epoch log line, best-model checkpoint, early stopping and the LR schedule."""
    monitor, mode, patience = settings.monitor, settings.mode, settings.patience
    delta = settings.min_delta
    callbacks = [
        _EpochLogger(keras, rows, settings.epochs, monitor, log).callback,
        keras.callbacks.ModelCheckpoint(
            str(run_dir / "model.keras"), monitor=monitor, mode=mode, save_best_only=True
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor,
            mode=mode,
            factor=settings.lr_factor,
            patience=settings.lr_patience,
            min_delta=delta,
            min_lr=settings.learning_rate / 100,
        ),
        keras.callbacks.EarlyStopping(
            monitor=monitor,
            mode=mode,
            patience=patience or settings.epochs + 1,
            min_delta=delta,
            start_from_epoch=settings.start_from_epoch,
            restore_best_weights=True,
        ),
    ]
    return callbacks


def _fit(
    keras: Any,
    model: Any,
    caches: dict[str, Cache],
    settings: TrainSettings,
    run_dir: Path,
    log: Log,
) -> list[dict[str, float]]:
    """Run ``model.fit`` on the cached splits; returns one history row per epoch."""
    augmenter = make_augmenter(settings.augment, settings.seed)
    train_ds = make_dataset(
        caches["train"],
        settings.batch_size,
        shuffle=True,
        seed=settings.seed,
        augmenter=augmenter,
    )
    val_ds = make_dataset(
        caches["validation"], settings.batch_size, shuffle=False, seed=settings.seed
    )
    rows: list[dict[str, float]] = []
    log(
        f"training {settings.arch.name} ({model.count_params():,} parameters) on "
        f"{len(caches['train'])} images, validating on {len(caches['validation'])}"
    )
    callbacks = _callbacks(keras, settings, run_dir, rows, log)
    fit = {"validation_data": val_ds, "callbacks": callbacks, "verbose": 0, "shuffle": False}
    head = settings.head_epochs
    if head <= 0:
        model.fit(train_ds, epochs=settings.epochs, **fit)  # the pipeline shuffles
        return rows
    log(f"phase 1: the head alone for {head} epoch(s), backbone frozen")
    model.fit(train_ds, epochs=head, **fit)
    unfrozen = backbones.unfreeze_top(model)
    rate = settings.learning_rate * backbones.FINE_TUNE_LR_FACTOR
    model.compile(
        optimizer=make_optimizer(settings.optimizer, rate),
        loss=make_loss(settings.arch.loss),
        metrics=["accuracy"],
    )
    log(f"phase 2: fine-tuning the top {unfrozen} backbone layer(s) at learning rate {rate:g}")
    model.fit(train_ds, initial_epoch=head, epochs=settings.epochs, **fit)
    model.load_weights(run_dir / "model.keras")  # the best epoch of either phase
    return rows


def _test_report(
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


def _run_config(
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


def _health(
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


def _pairs(cache: Cache) -> tuple[tuple[str, int], ...]:
    return tuple((str(p), int(t)) for p, t in zip(cache.paths, cache.targets, strict=True))


def _write_run(
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


def _tf_version() -> str:
    import tensorflow as tf

    return tf.__version__


def _check_caches(caches: dict[str, Cache], labels: tuple[str, ...]) -> None:
    """Every class needs readable training images; validation needs some images."""
    train = caches.get("train")
    present = set(train.targets.tolist()) if train is not None else set()
    missing = [lb for i, lb in enumerate(labels) if i not in present]
    if missing:
        raise DatasetError(
            f"no readable training images for class(es) {', '.join(missing)} "
            "(see the skipped files above)"
        )
    if "validation" not in caches or not len(caches["validation"]):
        raise DatasetError("no readable validation images (see the skipped files above)")


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


class _EpochLogger:
    """Collects one history row per epoch and prints it as one line (Keras' bar stays off)."""

    def __init__(
        self, keras: Any, rows: list[dict[str, float]], epochs: int, monitor: str, log: Log
    ) -> None:
        self.rows, self.epochs, self.monitor, self.log = rows, epochs, monitor, log
        self.best = math.nan
        outer = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                outer.t0 = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                outer.record(
                    epoch,
                    dict(logs or {}),
                    float(np.asarray(self.model.optimizer.learning_rate.value)),
                )

        self.callback = Callback()

    def record(self, epoch: int, logs: dict[str, Any], lr: float) -> None:
        row = {
            "epoch": epoch + 1,
            "seconds": round(time.perf_counter() - self.t0, 2),
            "learning_rate": lr,
        }
        row.update({k: float(v) for k, v in logs.items() if k != "learning_rate"})
        self.rows.append(row)
        value = row.get(self.monitor, math.nan)
        better = value > self.best if self.monitor.endswith("accuracy") else value < self.best
        mark = ""
        if math.isnan(self.best) or better:
            self.best, mark = value, "  *best"
        width = len(str(self.epochs))
        self.log(
            f"epoch {epoch + 1:>{width}}/{self.epochs}  loss {row.get('loss', math.nan):.4f}  "
            f"accuracy {row.get('accuracy', math.nan):.4f}  "
            f"val_loss {row.get('val_loss', math.nan):.4f}  "
            f"val_accuracy {row.get('val_accuracy', math.nan):.4f}  "
            f"lr {lr:.1e}  {row['seconds']:.1f}s{mark}"
        )
