"""The Keras fit loop of a run: the compiled model, its callbacks (one log line per epoch,
best-model checkpoint, LR plateau, early stopping) and the one- or two-phase ``fit``."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.train import backbones
from edgecnn.train.architectures import build_model, make_loss, make_optimizer
from edgecnn.train.data_cache import Cache, make_augmenter, make_dataset
from edgecnn.train.train_settings import TrainSettings

Log = Callable[[str], None]


def compiled_model(settings: TrainSettings, num_classes: int) -> Any:
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


def fit(
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
