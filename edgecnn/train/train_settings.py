"""Training options: what a caller may override (:class:`TrainOptions`) and the checked result
after the architecture's defaults filled the gaps (:class:`TrainSettings`). No TensorFlow."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from edgecnn.errors import EdgecnnError
from edgecnn.spec import InputSpec
from edgecnn.train.architectures import Architecture, get_architecture
from edgecnn.train.data_cache import parse_augment

MONITORS = ("val_accuracy", "val_loss")
#: The resize used by training (and therefore by every later step): area for downscaling.
INTERPOLATION = "area"
#: Early stopping: a change smaller than this (accuracy or loss) is no improvement.
MIN_DELTA = 1e-3
#: On a plateau the learning rate is multiplied by this (down to 1/100 of the start).
LR_FACTOR = 0.5


@dataclass(frozen=True)
class TrainOptions:
    """The training options a caller may set; None takes the architecture's default.

    The one list of them: ``train()`` takes an instance (or the same names as keywords) and the
    CLI builds one from its flags.
    """

    input_size: tuple[int, int] | None = None
    color: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    optimizer: str | None = None
    patience: int | None = None
    monitor: str | None = None
    augment: str | dict[str, float] | None = None
    val_split: float = 0.2
    test_split: float = 0.0
    seed: int = 42
    workers: int | None = None
    weights: str | None = None  # backbones only: imagenet (default), none or a weights file


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


def resolve_settings(arch: str, options: TrainOptions | None = None) -> TrainSettings:
    """Fill the options left as None from the architecture and check them (before any work)."""
    o = options or TrainOptions()
    spec_arch = get_architecture(arch)
    color = o.color or spec_arch.color
    height, width = o.input_size or spec_arch.input_size
    spec = InputSpec(height, width, 1 if color == "gray" else 3, color, "crop", INTERPOLATION)
    epochs = o.epochs if o.epochs is not None else spec_arch.epochs
    schedule = stopping_schedule(spec_arch.patience, epochs, o.patience)
    settings = TrainSettings(
        arch=spec_arch,
        input=spec,
        epochs=epochs,
        batch_size=o.batch_size or spec_arch.batch_size,
        learning_rate=o.learning_rate or spec_arch.learning_rate,
        optimizer=o.optimizer or spec_arch.optimizer,
        patience=schedule["patience"],
        start_from_epoch=schedule["start_from_epoch"],
        lr_patience=schedule["lr_patience"],
        weights=(o.weights or "imagenet") if spec_arch.backbone else None,
        head_epochs=min(spec_arch.head_epochs, epochs - 1) if spec_arch.backbone else 0,
        monitor=o.monitor or spec_arch.monitor,
        augment={},
        val_split=o.val_split,
        test_split=o.test_split,
        seed=o.seed,
        workers=o.workers,
    )
    _check(settings, o, spec_arch)
    try:
        augment = o.augment
        aug = augment if isinstance(augment, dict) else parse_augment(augment, spec_arch.augment)
    except ValueError as exc:
        raise EdgecnnError(str(exc)) from None
    return dataclasses.replace(settings, augment=aug)


def _check(settings: TrainSettings, options: TrainOptions, arch: Architecture) -> None:
    """Refuse settings that cannot train, naming the API parameter."""
    if options.weights is not None and not arch.backbone:
        raise EdgecnnError(
            f"`weights` applies to the transfer-learning architectures, not {arch.name!r}"
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
