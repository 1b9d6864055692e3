"""RunConfig: the typed handoff from ``train`` to ``export`` (a run folder's ``config.json``).

``edgecnn train`` writes one; ``edgecnn export`` (and ``eval`` on a ``.keras`` file) reads it
back with :meth:`RunConfig.read`, strictly (one error naming the field), instead of a dict
literal written in one module and read by string keys in another. TensorFlow-free.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError, ModelError
from edgecnn.spec import InputSpec
from edgecnn.strict_json import Fields, loads
from edgecnn.tools.report_files import write_json
from edgecnn.user_files import UnusableFile, read_text

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
#: What the model's last layer gives: "auto" means unknown (export detects it from the model).
OUTPUT_KINDS = ("auto", "probabilities", "logits")


@dataclass(frozen=True)
class TrainingSettings:
    """The options a run trained with (after the architecture's defaults filled the gaps)."""

    seed: int
    epochs: int
    batch_size: int
    optimizer: str
    learning_rate: float
    loss: str
    lr_schedule: str | None
    patience: int
    monitor: str
    augment: dict[str, float]
    val_split: float
    test_split: float
    #: early stopping: improvements smaller than this do not count; never before this epoch
    min_delta: float = 0.0
    start_from_epoch: int = 0
    #: learning rate x ``lr_factor`` after ``lr_patience`` epochs without improvement
    lr_patience: int = 0
    lr_factor: float = 1.0
    #: transfer learning: the backbone's starting weights, the epochs that trained the head
    #: alone, and the learning rate of the fine-tuning phase after them
    weights: str | None = None
    head_epochs: int = 0
    fine_tune_learning_rate: float | None = None


@dataclass(frozen=True)
class RunData:
    """Where the images came from and what was used or left out."""

    dir: str
    layout: str
    counts: dict[str, dict[str, int]]  #: split -> label -> images
    skipped: tuple[tuple[str, str], ...] = ()  #: (path, reason): unreadable
    ignored: tuple[tuple[str, str], ...] = ()  #: (path, reason): not images


@dataclass(frozen=True)
class RunResult:
    """How the run went (the best epoch's scores)."""

    val_accuracy: float
    val_loss: float
    best_epoch: int
    epochs_run: int
    train_images: int
    validation_images: int
    test_images: int
    test_accuracy: float | None
    parameters: int
    seconds: float
    #: what the end-of-training checks found (accuracy near chance, input-blind outputs)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunConfig:
    """Everything export needs from a training run, plus every setting and the data counts.

    ``validation`` / ``test`` are (path, class index) pairs: export calibrates and verifies on
    them. Fields other than labels / input are None or empty for a model trained elsewhere.
    """

    labels: tuple[str, ...]
    input: InputSpec
    output: str = "auto"
    architecture: str | None = None
    settings: TrainingSettings | None = None
    data: RunData | None = None
    validation: tuple[tuple[str, int], ...] = ()
    test: tuple[tuple[str, int], ...] = ()
    result: RunResult | None = None
    model: str = MODEL_FILE
    edgecnn_version: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    created: str | None = None

    def __post_init__(self) -> None:
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise ModelError("a run needs distinct labels")
        if self.output not in OUTPUT_KINDS:
            raise ModelError(f"output {self.output!r} is not one of {', '.join(OUTPUT_KINDS)}")

    def training_summary(self) -> dict[str, Any]:
        """The ``training`` object of the exported metadata."""
        r = self.result
        if r is None:
            return {}
        return {
            "val_accuracy": r.val_accuracy,
            "epochs": r.epochs_run,
            "best_epoch": r.best_epoch,
            "images": r.train_images,
        }

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` object (settings at the top level, as runs have always had)."""
        data: dict[str, Any] = {
            "architecture": self.architecture,
            "input": self.input.to_dict(),
            "labels": list(self.labels),
            "num_classes": len(self.labels),
            "output": self.output,
        }
        if self.settings is not None:
            data.update(dataclasses.asdict(self.settings))
        if self.data is not None:
            data["data"] = {
                **dataclasses.asdict(self.data),
                "skipped": [{"path": p, "reason": r} for p, r in self.data.skipped],
                "ignored": [{"path": p, "reason": r} for p, r in self.data.ignored],
            }
        for split in ("validation", "test"):
            pairs = getattr(self, split)
            data[f"{split}_files"] = [p for p, _ in pairs]
            data[f"{split}_targets"] = [t for _, t in pairs]
        if self.result is not None:
            data["result"] = dataclasses.asdict(self.result)
        data["model"] = self.model
        data["edgecnn_version"] = self.edgecnn_version
        data["versions"] = dict(self.versions)
        data["created"] = self.created
        return data

    def write(self, run_dir: str | Path) -> Path:
        """Write ``RUN_DIR/config.json`` and return its path."""
        path = Path(run_dir) / CONFIG_FILE
        write_json(path, self.to_dict())
        return path

    @classmethod
    def from_dict(cls, data: Any, where: str = CONFIG_FILE) -> RunConfig:
        """Read a ``config.json`` object strictly (one ModelError naming the field)."""
        fields = Fields(data, where)
        labels = fields.strings("labels")
        values = {
            "labels": labels,
            "input": InputSpec.from_fields(fields.child("input")),
            "output": fields.string("output", OUTPUT_KINDS, default="auto"),
            "architecture": fields.string("architecture", default=None),
            "settings": _settings(fields) if fields.has("epochs") else None,
            "data": _data(fields.child("data")) if fields.has("data") else None,
            "validation": _files(fields, "validation", len(labels)),
            "test": _files(fields, "test", len(labels)),
            "result": _result(fields.child("result")) if fields.has("result") else None,
            "model": fields.string("model", default=MODEL_FILE),
            "edgecnn_version": fields.string("edgecnn_version", default=None),
            "versions": fields.scalars("versions", default={}),
            "created": fields.string("created", default=None),
        }
        try:
            return cls(**values)
        except ModelError as exc:
            fields.fail(str(exc))

    @classmethod
    def read(cls, path: str | Path, error: type[EdgecnnError] = ModelError) -> RunConfig:
        """Read ``path`` (a ``config.json``); any problem is one ``error`` naming the file."""
        path = Path(path)
        try:
            text = read_text(path)
        except UnusableFile as exc:
            raise error(f"{exc.path}: cannot read: {exc.reason}") from None
        try:
            return cls.from_dict(loads(text, str(path)), str(path))
        except ModelError as exc:
            raise error(str(exc)) from None


def _settings(fields: Fields) -> TrainingSettings:
    augment = fields.scalars("augment", default={})
    for name, value in augment.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fields.fail(f"expected a number, got {value!r}", f"augment.{name}")
    return TrainingSettings(
        seed=fields.integer("seed"),
        epochs=fields.integer("epochs", 1),
        batch_size=fields.integer("batch_size", 1),
        optimizer=fields.string("optimizer"),
        learning_rate=fields.number("learning_rate", 0),
        loss=fields.string("loss"),
        lr_schedule=fields.string("lr_schedule", default=None),
        patience=fields.integer("patience", 0),
        monitor=fields.string("monitor"),
        augment=augment,
        val_split=fields.number("val_split", 0, 1),
        test_split=fields.number("test_split", 0, 1),
        min_delta=fields.number("min_delta", 0, default=0.0),
        start_from_epoch=fields.integer("start_from_epoch", 0, default=0),
        lr_patience=fields.integer("lr_patience", 0, default=0),
        lr_factor=fields.number("lr_factor", 0, 1, default=1.0),
        weights=fields.string("weights", default=None),
        head_epochs=fields.integer("head_epochs", 0, default=0),
        fine_tune_learning_rate=fields.number("fine_tune_learning_rate", 0, default=None),
    )


def _pairs(fields: Fields, key: str) -> tuple[tuple[str, str], ...]:
    entries = fields.data.get(key, [])
    if not isinstance(entries, list):
        fields.fail("expected a list", key)
    out = []
    for i, entry in enumerate(entries):
        item = Fields(entry, fields.where, fields.error, f"{fields.path}.{key}[{i}]")
        out.append((item.string("path"), item.string("reason")))
    return tuple(out)


def _data(fields: Fields) -> RunData:
    counts_fields = fields.child("counts", default=None)
    counts: dict[str, dict[str, int]] = {}
    if counts_fields is not None:
        for split in counts_fields.data:
            per_class = counts_fields.child(split)
            counts[split] = {label: per_class.integer(label, 0) for label in per_class.data}
    return RunData(
        dir=fields.string("dir"),
        layout=fields.string("layout"),
        counts=counts,
        skipped=_pairs(fields, "skipped"),
        ignored=_pairs(fields, "ignored"),
    )


def _files(fields: Fields, split: str, classes: int) -> tuple[tuple[str, int], ...]:
    paths = fields.strings(f"{split}_files", default=())
    targets = fields.integers(f"{split}_targets", default=())
    if len(paths) != len(targets):
        fields.fail(f"{len(paths)} files but {len(targets)} targets", f"{split}_targets")
    for i, target in enumerate(targets):
        if not 0 <= target < classes:
            fields.fail(f"item {i} is {target}, not a class index below {classes}", split)
    return tuple(zip(paths, targets, strict=True))


def _result(fields: Fields) -> RunResult:
    return RunResult(
        val_accuracy=fields.number("val_accuracy", 0, 1),
        val_loss=fields.number("val_loss"),
        best_epoch=fields.integer("best_epoch", 1),
        epochs_run=fields.integer("epochs_run", 0),
        train_images=fields.integer("train_images", 0),
        validation_images=fields.integer("validation_images", 0),
        test_images=fields.integer("test_images", 0),
        test_accuracy=fields.number("test_accuracy", 0, 1, default=None),
        parameters=fields.integer("parameters", 0),
        seconds=fields.number("seconds", 0),
        warnings=tuple(fields.strings("warnings", default=())),
    )
