"""Where a Keras model and its description come from: a training run folder or a bare file + flags.

A run folder written by ``edgecnn train`` holds ``model.keras``, ``labels.json`` and
``config.json``; everything the ONNX metadata needs is read from there. A model trained elsewhere
is described with flags (labels file, input size, colour, fit). Flags always win over the run's
files, so a user can correct a run without editing JSON. TensorFlow-free: ``edgecnn eval`` uses
this for ``.keras`` models too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import ExportError, ModelError
from edgecnn.model_files import ONNX, model_kind
from edgecnn.run_config import CONFIG_FILE, LABELS_FILE, MODEL_FILE, OUTPUT_KINDS, RunConfig
from edgecnn.spec import InputSpec, parse_size, read_labels_file

__all__ = ["OUTPUT_KINDS", "InputOverrides", "ModelSource", "resolve_source"]


@dataclass(frozen=True)
class InputOverrides:
    """Command-line description of a model, used alone or on top of a run's files."""

    labels_file: str | None = None
    input_size: str | None = None
    color: str | None = None
    fit: str | None = None
    interpolation: str | None = None
    output: str = "auto"
    anchor: str | None = None
    pad_value: int | None = None


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


def _locate(model: str | Path) -> tuple[Path, Path | None]:
    """(the Keras file, its run folder or None) for a run folder or a model file."""
    path = Path(model)
    if not path.exists():
        raise ExportError(f"{path}: no such file or directory")
    if model_kind(path) == ONNX:  # before asking for labels it would not need
        raise ExportError(
            f"{path}: this is already an ONNX model; nothing to export (`edgecnn info {path}` "
            "shows what it carries)"
        )
    if path.is_dir():
        if not (path / MODEL_FILE).is_file():
            raise ExportError(f"{path}: no {MODEL_FILE} in this folder (not a training run)")
        return path / MODEL_FILE, path
    if (path.parent / CONFIG_FILE).is_file() or (path.parent / LABELS_FILE).is_file():
        return path, path.parent
    return path, None


def _labels(
    path: Path, run_dir: Path | None, config: RunConfig | None, overrides: InputOverrides
) -> tuple[str, ...]:
    """Labels from the labels file given, else the run's labels.json, else its config."""
    labels: tuple[str, ...] | None = None
    try:
        if overrides.labels_file:
            labels = read_labels_file(overrides.labels_file)
        elif run_dir is not None and (run_dir / LABELS_FILE).is_file():
            labels = read_labels_file(str(run_dir / LABELS_FILE))
        elif config is not None:
            labels = config.labels
    except ModelError as exc:
        raise ExportError(str(exc)) from exc
    if not labels:
        raise ExportError(
            f"{path}: no labels found; pass `labels_file` (one label per line, or a JSON list)"
        )
    if len(set(labels)) != len(labels):
        raise ExportError(f"{path}: the labels contain duplicates")
    return labels


def _input_spec(path: Path, config: RunConfig | None, overrides: InputOverrides) -> InputSpec:
    """The run's input spec with the overrides applied (an override always wins)."""
    size = config.input.size if config is not None else None
    if overrides.input_size:
        try:
            size = parse_size(overrides.input_size)
        except ValueError as exc:
            raise ExportError(str(exc)) from exc
    if size is None:
        raise ExportError(
            f"{path}: the input size is unknown (no run config.json); give `input_size` HxW "
            "and, if they differ from the defaults, `color` rgb|bgr|gray and `fit` "
            "crop|stretch|pad|height"
        )
    base = config.input if config is not None else InputSpec(*size)
    color = overrides.color or base.color
    try:
        return InputSpec(
            height=size[0],
            width=size[1],
            channels=1 if color == "gray" else 3,
            color=color,
            fit=overrides.fit or base.fit,
            interpolation=overrides.interpolation or base.interpolation,
            anchor=overrides.anchor or base.anchor,
            pad_value=base.pad_value if overrides.pad_value is None else overrides.pad_value,
        )
    except ModelError as exc:
        raise ExportError(str(exc)) from exc


def _files(
    pairs: tuple[tuple[str, int], ...], base: Path, labels: tuple[str, ...]
) -> tuple[tuple[Path, str | None], ...]:
    """Paths + labels of a run's validation / test files; relative paths against the run."""
    out = []
    for name, target in pairs:
        p = Path(name)
        if not p.is_absolute() and (base / p).exists():
            p = base / p
        out.append((p, labels[target] if target < len(labels) else None))
    return tuple(out)


def resolve_source(model: str | Path, overrides: InputOverrides | None = None) -> ModelSource:
    """Find the Keras file and its labels / input spec from a run folder and/or flags."""
    overrides = overrides or InputOverrides()
    path, run_dir = _locate(model)
    config = None
    if run_dir is not None and (run_dir / CONFIG_FILE).is_file():
        config = RunConfig.read(run_dir / CONFIG_FILE, ExportError)
    labels = _labels(path, run_dir, config, overrides)
    output = overrides.output
    if output not in OUTPUT_KINDS:
        raise ExportError(f"output kind {output!r} is not one of {', '.join(OUTPUT_KINDS)}")
    if output == "auto" and config is not None:
        output = config.output
    base_dir = run_dir or path.parent
    return ModelSource(
        model_path=path,
        labels=labels,
        input=_input_spec(path, config, overrides),
        output=output,
        run_dir=run_dir,
        architecture=config.architecture if config else None,
        training=config.training_summary() if config else {},
        validation=_files(config.validation, base_dir, labels) if config else (),
        test=_files(config.test, base_dir, labels) if config else (),
    )
