"""Options shared by every verb that loads a model for inference (classify, live, bench), and
the one ``--interpolation`` every verb declares (eval and export too)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from edgecnn.errors import ModelError
from edgecnn.normalization import parse_normalization
from edgecnn.runtime.engines.base import PROVIDERS
from edgecnn.spec import ANCHORS, COLORS, FITS, INTERPOLATIONS, parse_size, read_labels_file

if TYPE_CHECKING:  # loaded when a model is: eval's and export's flags stay light
    from edgecnn.export.model_source import InputOverrides
    from edgecnn.normalization import Normalization
    from edgecnn.runtime.classifier import Classifier, Foreign

#: The input flags every model description shares (after its labels), by parameter names.
_INPUT_KEYS = (
    "input_size",
    "color",
    "fit",
    "interpolation",
    "anchor",
    "pad_value",
    "scale",
    "mean",
    "std",
)
_FOREIGN_KEYS = ("labels", *_INPUT_KEYS, "logits")


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def interpolation_option(help_text: str) -> Callable[..., Any]:
    """--interpolation: one of the contract's resize methods (the one declaration every verb
    uses; a value outside them is a usage error)."""
    return click.option("--interpolation", type=click.Choice(INTERPOLATIONS), help=help_text)


def foreign_fit_options(
    prefix: str, interpolation_help: str | None = None
) -> list[Callable[..., Any]]:
    """--interpolation / --anchor / --pad-value for a model whose spec is given by flags
    (``interpolation_help``: a verb's own help where --interpolation means more)."""
    return [
        interpolation_option(
            interpolation_help or f"{prefix}resize interpolation [default: bilinear]."
        ),
        click.option(
            "--anchor",
            type=click.Choice(ANCHORS),
            help=f"{prefix}where --fit pad/height places the image [default: center].",
        ),
        click.option(
            "--pad-value",
            type=click.IntRange(0, 255),
            help=f"{prefix}fill of --fit pad/height, in pixel units 0..255 [default: 0].",
        ),
    ]


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --model/--provider/--threads and the flags that let a foreign ONNX model run."""
    for option in reversed([*_model_flags(), *_foreign_model_flags()]):
        command = option(command)
    return command


def foreign_model_options(
    interpolation_help: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: only the flags that describe an ONNX model without edgecnn metadata (for a
    verb with its own --model / --provider / --threads, such as bench); read them back with
    :func:`pop_foreign`."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(_foreign_model_flags(interpolation_help)):
            command = option(command)
        return command

    return decorate


def _model_flags() -> list[Callable[..., Any]]:
    """--model, --provider, --threads."""
    return [
        click.option(
            "--model",
            "-m",
            "model",
            type=click.Path(),  # a folder gets edgecnn's message (a run folder: export it)
            help="An edgecnn .onnx model (default: the bundled shapes model).",
        ),
        click.option(
            "--provider",
            type=click.Choice(PROVIDERS),
            default="auto",
            show_default=True,
            help="auto: the fastest engine here (CUDA on NVIDIA GPUs; OpenVINO for batches and "
            "onnxruntime for single frames on CPUs), saying why. cpu / openvino / cuda / "
            "tensorrt: that engine or an error with the reason, never a fallback.",
        ),
        click.option(
            "--threads",
            type=click.IntRange(min=1),
            help="onnxruntime intra-op threads (default: one per core).",
        ),
    ]


def _foreign_model_flags(interpolation_help: str | None = None) -> list[Callable[..., Any]]:
    """The flags that describe an ONNX model without edgecnn metadata."""
    return [
        click.option(
            "--labels",
            "labels",
            type=click.Path(dir_okay=False),
            help="Model without edgecnn metadata: labels file (one per line, or JSON).",
        ),
        click.option(
            "--input-size", callback=_size, help="Model without edgecnn metadata: input size HxW."
        ),
        click.option(
            "--color",
            type=click.Choice(COLORS),
            help="Model without metadata: channel order it expects [default: rgb].",
        ),
        click.option(
            "--fit",
            type=click.Choice(FITS),
            help="Model without metadata: how images are fitted [default: crop]; height = "
            "resize to the model's height keeping the aspect ratio, pad the rest.",
        ),
        *foreign_fit_options("Model without metadata: ", interpolation_help),
        click.option(
            "--scale",
            help="Model without metadata, float input: pixel multiplier, e.g. 1/255 or 1/127.5.",
        ),
        click.option(
            "--mean",
            help="Model without metadata: mean, one value or per channel, e.g. 0.485,0.456,"
            "0.406 (after --scale).",
        ),
        click.option("--std", help="Model without metadata: per-channel std (after --scale)."),
        click.option(
            "--logits",
            is_flag=True,
            help="Model without metadata: outputs logits, apply a softmax.",
        ),
    ]


@dataclass(frozen=True)
class ModelChoice:
    """The model options of a command, before anything is loaded."""

    model: str | None
    provider: str
    threads: int | None
    foreign: Foreign | None


def pop_model_choice(kwargs: dict[str, Any]) -> ModelChoice:
    """Take :func:`model_options` values out of ``kwargs`` (checked, not loaded)."""
    model = kwargs.pop("model")
    provider = kwargs.pop("provider")
    threads = kwargs.pop("threads")
    return ModelChoice(model, provider, threads, pop_foreign(kwargs))


def pop_foreign(kwargs: dict[str, Any]) -> Foreign | None:
    """Take the foreign-model flags out of ``kwargs``: the :class:`Foreign` they describe, or
    None when --labels / --input-size are not given (any other of them then is a usage
    error)."""
    from edgecnn.runtime.classifier import Foreign

    values = {key: kwargs.pop(key) for key in _FOREIGN_KEYS}
    describing = [
        f"--{key.replace('_', '-')}"
        for key in _FOREIGN_KEYS[2:]
        if values[key] is not None and values[key] is not False
    ]
    if describing and not (values["labels"] and values["input_size"]):
        raise click.UsageError(
            f"{', '.join(describing)} describe a model without edgecnn metadata and need "
            "--labels and --input-size too"
        )
    if not (values["labels"] or values["input_size"]):
        return None
    if not (values["labels"] and values["input_size"]):
        raise ModelError("--labels and --input-size are needed together")
    norm = parse_normalization(values["scale"], values["mean"], values["std"])
    return Foreign(
        labels=read_labels_file(values["labels"]),
        input_size=values["input_size"],
        color=values["color"] or "rgb",
        fit=values["fit"] or "crop",
        interpolation=values["interpolation"] or "bilinear",
        anchor=values["anchor"] or "center",
        pad_value=values["pad_value"] or 0,
        scale=norm.scale if values["scale"] else None,  # None: not said (float input asks)
        mean=norm.mean,
        std=norm.std,
        logits=values["logits"],
    )


def load_classifier(kwargs: dict[str, Any], *, spinning: bool | None = None) -> Classifier:
    """Build the Classifier from :func:`model_options` values (popped from ``kwargs``).

    ``spinning``: onnxruntime CPU threads busy-wait between runs (None: the engine default);
    verbs that decode in worker threads pass False so the cores go to decoding."""
    from edgecnn.runtime.classifier import Classifier

    choice = pop_model_choice(kwargs)
    return Classifier.load(
        choice.model,
        provider=choice.provider,
        threads=choice.threads,
        foreign=choice.foreign,
        spinning=spinning,
    )


def with_classifier(
    command: Callable[..., Any] | None = None,
    *,
    spinning: bool | None = None,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> Any:
    """Decorator: replace the model options by a loaded ``classifier`` argument.

    ``@with_classifier(spinning=False)`` for verbs whose decode threads share the cores.
    ``check(kwargs)``: the verb's usage checks, run before the model loads (a usage error
    should not wait for a model and a scan)."""
    if command is None:
        return functools.partial(with_classifier, spinning=spinning, check=check)

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        if check is not None:
            check(kwargs)
        classifier = load_classifier(kwargs, spinning=spinning)
        return command(classifier=classifier, **kwargs)

    return model_options(wrapper)


#: A Keras model's input flags (eval, export), by their parameter names.
KERAS_INPUT_KEYS = ("labels_file", *_INPUT_KEYS)


def pop_keras_inputs(
    kwargs: dict[str, Any], *, output: str = "auto"
) -> tuple[InputOverrides, Normalization]:
    """Take a Keras model's input flags out of a verb's ``kwargs``: the export's
    :class:`InputOverrides` and the model's normalization (one reading for eval and export)."""
    from edgecnn.export.model_source import InputOverrides

    values = {key: kwargs.pop(key) for key in KERAS_INPUT_KEYS}
    normalization = parse_normalization(values.pop("scale"), values.pop("mean"), values.pop("std"))
    return InputOverrides(**values, output=output), normalization


def single_threaded_opencv() -> None:
    """Parallelism comes from the decode workers; OpenCV's own pool would oversubscribe the
    cores. Set once by the verbs that own the process (classify, bench), never by the library
    (an embedding application owns its OpenCV settings)."""
    import cv2

    cv2.setNumThreads(1)
