"""Where a Keras model and its description come from: a training run folder or a bare file + flags.

A run folder written by ``edgecnn train`` holds ``model.keras``, ``labels.json`` and
``config.json``; everything the ONNX metadata needs is read from there. A model trained elsewhere
is described with flags (labels file, input size, colour, fit). Flags always win over the run's
files, so a user can correct a run without editing JSON. TensorFlow-free: ``edgecnn eval`` uses
this for ``.keras`` models too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import ExportError, ModelError
from edgecnn.model_files import ONNX, model_kind
from edgecnn.spec import InputSpec, parse_size, read_labels_file
from edgecnn.user_files import UnusableFile, read_text

MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"
CONFIG_FILE = "config.json"
OUTPUT_KINDS = ("auto", "probabilities", "logits")


@dataclass(frozen=True)
class InputOverrides:
    """Command-line description of a model, used alone or on top of a run's files."""

    labels_file: str | None = None
    input_size: str | None = None
    color: str | None = None
    fit: str | None = None
    interpolation: str | None = None
    output: str = "auto"


@dataclass(frozen=True)
class ModelSource:
    """A Keras model file plus everything known about it before loading it."""

    model_path: Path
    labels: tuple[str, ...]
    input: InputSpec
    output: str  # "auto", "probabilities" or "logits"
    run_dir: Path | None = None
    architecture: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    validation: tuple[tuple[Path, str | None], ...] = ()
    test: tuple[tuple[Path, str | None], ...] = ()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_text(path))
    except UnusableFile as exc:
        raise ExportError(f"{exc.path}: cannot read: {exc.reason}") from None
    except (OSError, json.JSONDecodeError, RecursionError) as exc:
        raise ExportError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise ExportError(f"{path}: expected a JSON object")
    return data


def _file_list(
    entries: Any, base: Path, labels: tuple[str, ...], targets: Any = None
) -> tuple[tuple[Path, str | None], ...]:
    """Paths (+ labels) from a run's ``validation_files`` / ``test_files`` (+ ``*_targets``).

    Accepts plain paths (label: the matching class index in ``targets``, else the parent folder
    name when it is a label), ``[path, label]`` pairs and ``{"path": ..., "label": ...}``
    objects; relative paths are tried against the run folder.
    """
    entries = list(entries or ())
    if not isinstance(targets, list) or len(targets) != len(entries):
        targets = [None] * len(entries)
    out = []
    for entry, target in zip(entries, targets, strict=True):
        label: Any = target
        if isinstance(entry, dict):
            path, label = entry.get("path"), entry.get("label")
        elif isinstance(entry, (list, tuple)) and len(entry) == 2:
            path, label = entry
        else:
            path = entry
        if not isinstance(path, str):
            continue
        p = Path(path)
        if not p.is_absolute() and (base / p).exists():
            p = base / p
        if isinstance(label, int) and 0 <= label < len(labels):
            label = labels[label]
        if not isinstance(label, str):
            label = p.parent.name if p.parent.name in labels else None
        out.append((p, label))
    return tuple(out)


def resolve_source(model: str | Path, overrides: InputOverrides | None = None) -> ModelSource:
    """Find the Keras file and its labels / input spec from a run folder and/or flags."""
    overrides = overrides or InputOverrides()
    path = Path(model)
    if not path.exists():
        raise ExportError(f"{path}: no such file or directory")
    if model_kind(path) == ONNX:  # before asking for labels it would not need
        raise ExportError(
            f"{path}: this is already an ONNX model; nothing to export (`edgecnn info {path}` "
            "shows what it carries)"
        )
    run_dir: Path | None = None
    if path.is_dir():
        run_dir = path
        path = path / MODEL_FILE
        if not path.is_file():
            raise ExportError(f"{run_dir}: no {MODEL_FILE} in this folder (not a training run)")
    elif (path.parent / CONFIG_FILE).is_file() or (path.parent / LABELS_FILE).is_file():
        run_dir = path.parent

    config: dict[str, Any] = {}
    if run_dir is not None and (run_dir / CONFIG_FILE).is_file():
        config = _read_json(run_dir / CONFIG_FILE)

    labels: tuple[str, ...] | None = None
    try:
        if overrides.labels_file:
            labels = read_labels_file(overrides.labels_file)
        elif run_dir is not None and (run_dir / LABELS_FILE).is_file():
            labels = read_labels_file(str(run_dir / LABELS_FILE))
        elif isinstance(config.get("labels"), list):
            labels = tuple(str(x) for x in config["labels"])
    except ModelError as exc:
        raise ExportError(str(exc)) from exc
    if not labels:
        raise ExportError(
            f"{path}: no labels found; pass --labels FILE (one label per line, or a JSON list)"
        )
    if len(set(labels)) != len(labels):
        raise ExportError(f"{path}: the labels contain duplicates")

    base = dict(config.get("input") or {})
    if overrides.input_size:
        try:
            base["height"], base["width"] = parse_size(overrides.input_size)
        except ValueError as exc:
            raise ExportError(str(exc)) from exc
    for key in ("color", "fit", "interpolation"):
        value = getattr(overrides, key)
        if value:
            base[key] = value
    if overrides.color:
        base["channels"] = 1 if overrides.color == "gray" else 3
    if "height" not in base or "width" not in base:
        raise ExportError(
            f"{path}: the input size is unknown (no run config.json); pass --input-size HxW "
            "and, if they differ from the defaults, --color rgb|bgr|gray and --fit crop|stretch|pad"
        )
    try:
        spec = InputSpec.from_dict(base)
    except ModelError as exc:
        raise ExportError(str(exc)) from exc

    output = overrides.output
    if output not in OUTPUT_KINDS:
        raise ExportError(f"output kind {output!r} is not one of {', '.join(OUTPUT_KINDS)}")
    if output == "auto" and config.get("output") in ("probabilities", "logits"):
        output = config["output"]

    result = config.get("result") or {}
    training = {
        key: result[src]
        for key, src in (
            ("val_accuracy", "val_accuracy"),
            ("epochs", "epochs_run"),
            ("best_epoch", "best_epoch"),
            ("images", "train_images"),
        )
        if src in result
    }
    base_dir = run_dir or path.parent
    return ModelSource(
        model_path=path,
        labels=labels,
        input=spec,
        output=output,
        run_dir=run_dir,
        architecture=config.get("architecture"),
        training=training,
        validation=_file_list(
            config.get("validation_files"), base_dir, labels, config.get("validation_targets")
        ),
        test=_file_list(config.get("test_files"), base_dir, labels, config.get("test_targets")),
    )
