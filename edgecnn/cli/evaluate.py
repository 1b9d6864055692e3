"""``edgecnn eval MODEL DATA_DIR``: thin over :func:`edgecnn.tools.evaluation.evaluate`"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from edgecnn.cli.options import interpolation_option, pop_keras_inputs
from edgecnn.runtime.engines.base import PRECISIONS, PROVIDERS
from edgecnn.spec import ANCHORS, COLORS, FITS
from edgecnn.user_files import check_output_path


@click.command("eval")
@click.argument("model", type=click.Path(path_type=str))
@click.argument("data_dir", type=click.Path(path_type=str))
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=str),
    help="Write the full report (metrics, confusion matrix, failures) as JSON.",
)
@click.option(
    "--png",
    "png_path",
    type=click.Path(path_type=str),
    help="Write the confusion matrix as a PNG (needs matplotlib).",
)
@click.option(
    "--provider",
    type=click.Choice(PROVIDERS),
    default="auto",
    show_default=True,
    help="ONNX models: execution provider.",
)
@click.option("--threads", type=click.IntRange(1), help="ONNX models: onnxruntime threads.")
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="f32",
    show_default=True,
    help="ONNX models: engine precision; bf16/f16 run on OpenVINO (auto; f16 also on "
    "tensorrt) and report their top-1 agreement with f32 on the same images.",
)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(path_type=str),
    help="Keras models trained elsewhere: labels file.",
)
@click.option("--input-size", help="Keras models trained elsewhere: HxW.")
@click.option("--color", type=click.Choice(COLORS), help="Keras models: channel order.")
@click.option("--fit", type=click.Choice(FITS), help="Keras models: how photos are fitted.")
@interpolation_option("Keras models: resize method.")
@click.option("--anchor", type=click.Choice(ANCHORS), help="Keras models: --fit pad/height side.")
@click.option("--pad-value", type=click.IntRange(0, 255), help="Keras models: pad fill 0..255.")
@click.option("--scale", help="Keras models trained on 0..1 input: e.g. 1/255.")
@click.option("--mean", help="Keras models: subtract after scaling (one or per channel).")
@click.option("--std", help="Keras models: divide after subtracting (one or per channel).")
@click.option("--unsafe", is_flag=True, help="Keras models: allow unsafe deserialization.")
def evaluate(
    model: str,
    data_dir: str,
    json_path: str | None,
    png_path: str | None,
    provider: str,
    threads: int | None,
    precision: str,
    batch_size: int,
    **keras_flags: Any,
) -> None:
    """Accuracy, per-class precision / recall / F1 and confusion matrix of MODEL on DATA_DIR.

    MODEL: an .onnx file (run through the edge runtime, as deployed) or a .keras file / training
    run folder (run through Keras). DATA_DIR: DATA_DIR/test/<class>/* if a test folder exists,
    else DATA_DIR/<class>/*; class folders are named like the model's labels.
    """
    from edgecnn.tools import evaluation
    from edgecnn.tools.report_files import write_json

    for flag, path in (("--json", json_path), ("--png", png_path)):
        if path:
            check_output_path(path, flag, stdout=True)  # before the evaluation, not after
    if png_path:
        from edgecnn.tools import plots

        plots.pyplot()  # matplotlib missing: say so before evaluating, not after
    keras_options = _keras_options(evaluation.is_onnx(model), **keras_flags)
    with _progress() as progress:
        report = evaluation.evaluate(
            model,
            data_dir,
            provider=provider,
            threads=threads,
            batch_size=batch_size,
            keras_options=keras_options,
            progress=progress,
            precision=precision,
        )
    click.echo(evaluation.format_evaluation(report))
    if json_path:
        write_json(json_path, report, "--json")
        click.echo(f"json: {json_path}")
    if png_path:
        evaluation.plot_confusion(report, png_path)
        click.echo(f"png: {png_path}")


def _keras_options(onnx: bool, *, unsafe: bool, **inputs: Any) -> dict[str, Any] | None:
    """What a Keras model needs to be evaluated (input spec, normalization); an .onnx model
    carries its spec, so these flags are refused for one."""
    if onnx:
        if unsafe or any(value is not None for value in inputs.values()):
            raise click.UsageError(
                "--labels/--input-size/--color/--fit/--interpolation/--anchor/--pad-value/"
                "--scale/--mean/--std/"
                "--unsafe apply to Keras models; an .onnx model carries its spec"
            )
        return None
    overrides, normalization = pop_keras_inputs(inputs)
    return {"overrides": overrides, "normalization": normalization, "unsafe": unsafe}


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr when it is a terminal (its ``update`` callback), else None."""
    if not sys.stderr.isatty():
        yield None
        return
    bar = click.progressbar(length=1, label="evaluating", file=sys.stderr)

    def update(done: int, total: int) -> None:
        bar.length = total
        bar.update(done - bar.pos)

    try:
        yield update
    finally:
        bar.render_finish()
