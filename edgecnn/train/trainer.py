"""``train()``: image folder -> RUN_DIR with the best Keras model and everything export needs.

RUN_DIR receives ``model.keras`` (best weights), ``labels.json``, ``config.json`` (the interface
``edgecnn export`` reads: input spec, labels, output kind, every setting, data counts, the
validation / test files), ``history.csv``, ``history.png`` and, with a test split,
``report.json`` + ``confusion_matrix.png``. The steps live beside it: options
(``train_settings``), the fit loop (``keras_fit``) and what a run records (``run_record``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import _deps
from edgecnn.data.dataset_splits import resolve_splits
from edgecnn.data.datasets import Dataset, discover
from edgecnn.errors import DatasetError, EdgecnnError
from edgecnn.run_config import RunConfig
from edgecnn.spec import InputSpec
from edgecnn.train import keras_fit, run_record
from edgecnn.train.data_cache import Cache, build_cache
from edgecnn.train.train_settings import TrainOptions, TrainSettings, resolve_settings

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

Log = Callable[[str], None]


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


def train(
    data_dir: str | Path,
    arch: str = "edge",
    out: str | Path = "runs/edge",
    options: TrainOptions | None = None,
    *,
    num_classes: int | None = None,
    force: bool = False,
    log: Log | None = None,
    warn: Log | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train ``arch`` on the image folder ``data_dir`` and write the run to ``out``.

    ``options`` (a :class:`TrainOptions`) and/or ``overrides`` (its field names as keywords,
    e.g. ``epochs=3``, applied on top) set the training options; those left as None take the
    architecture's tutorial defaults. ``weights`` (imagenet by default, none, or a weights file)
    is for the transfer-learning backbones. ``log`` receives progress lines (one per epoch),
    ``warn`` the skipped files and end-of-training warnings; both are silent when None.
    """
    log, warn = log or _quiet, warn or _quiet
    started = time.perf_counter()
    settings = resolve_settings(arch, dataclasses.replace(options or TrainOptions(), **overrides))
    dataset, splits = _load_splits(data_dir, settings, num_classes)
    run_dir = prepare_run_dir(out, force)
    keras = _deps.keras()
    keras.utils.set_random_seed(settings.seed)
    # the model first: a backbone whose weights cannot be found fails before minutes of decoding
    model = keras_fit.compiled_model(settings, len(dataset.labels))
    caches = _build_caches(splits, settings, run_dir, log, warn)
    _check_caches(caches, dataset.labels)
    rows = keras_fit.fit(keras, model, caches, settings, run_dir, log)
    model.save(run_dir / "model.keras")  # best weights (restored by EarlyStopping)
    scores = [r[settings.monitor] for r in rows]
    best = int(np.nanargmax(scores) if settings.mode == "max" else np.nanargmin(scores))
    test_report = run_record.write_test_report(model, caches, dataset.labels, settings, run_dir)
    problems = run_record.health(model, caches["validation"], dataset.labels, settings)
    for line in problems:
        warn(f"warning: {line}")
    seconds = time.perf_counter() - started
    config = run_record.run_config(
        settings, dataset, caches, rows, best, test_report, model, seconds, data_dir, problems
    )
    run_record.write_run(run_dir, config, rows, best, settings)
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
