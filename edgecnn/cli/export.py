"""``edgecnn export MODEL -o OUT.onnx``: a thin wrapper over :func:`edgecnn.export.export_model`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from edgecnn.cli.flags import as_flags
from edgecnn.cli.options import interpolation_option, pop_keras_inputs
from edgecnn.export.model_source import OUTPUT_KINDS
from edgecnn.export.quantize import METHODS, TARGETS
from edgecnn.spec import ANCHORS, COLORS, FITS

if TYPE_CHECKING:
    from edgecnn.export import ExportOptions

PRECISION_CHOICES = ("fp32", "fp16", "int8-dynamic", "int8")


@click.command("export")
@click.argument("model", type=click.Path(path_type=str))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=str),
    help="The .onnx file to write (its folder must exist).",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISION_CHOICES),
    default="fp32",
    show_default=True,
    help="fp32; fp16 (for GPUs); int8-dynamic; int8 = static QDQ, calibrated (CPUs).",
)
@click.option(
    "--calibration",
    type=click.Path(path_type=str),
    help="Image folder for int8 calibration (DIR/<class>/*, or DIR/train/<class>/*). "
    "Default: the run's validation files.",
)
@click.option(
    "--calibration-count",
    type=click.IntRange(1),
    default=300,
    show_default=True,
    help="Calibration images, sampled evenly over classes.",
)
@click.option(
    "--calibration-method",
    type=click.Choice(METHODS),
    default="minmax",
    show_default=True,
)
@click.option(
    "--verify",
    "verify_dir",
    type=click.Path(path_type=str),
    help="Labelled image folder to verify on (default: the run's validation files, "
    "else the calibration folder).",
)
@click.option(
    "--verify-count",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Most verification images, sampled evenly over classes.",
)
@click.option(
    "--max-accuracy-drop",
    type=click.FloatRange(0),
    default=1.0,
    show_default=True,
    help="Refuse a quantized model losing more accuracy points than this vs Keras.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Write a model that failed the quantization gate or looks dead (outputs that do not "
    "depend on the input), with a warning.",
)
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(path_type=str),
    help="Labels file (one per line or JSON) for a model trained elsewhere.",
)
@click.option("--input-size", help="HxW the model expects, e.g. 224x224.")
@click.option("--color", type=click.Choice(COLORS), help="Channel order.")
@click.option(
    "--fit",
    type=click.Choice(FITS),
    help="How photos are fitted to the input size; height = the model's height, aspect kept, "
    "padded (text lines).",
)
@interpolation_option("Resize interpolation the model was trained with.")
@click.option(
    "--anchor",
    type=click.Choice(ANCHORS),
    help="Where --fit pad/height places the image [default: center].",
)
@click.option(
    "--pad-value",
    type=click.IntRange(0, 255),
    help="Fill of --fit pad/height in pixel units 0..255 [default: 0].",
)
@click.option(
    "--output-kind",
    type=click.Choice(OUTPUT_KINDS),
    default="auto",
    show_default=True,
    help="What the Keras model outputs; logits get a softmax appended.",
)
@click.option("--scale", help="Multiply pixels (0..255) by this in the graph, e.g. 1/255.")
@click.option("--mean", help="Subtract after scaling: one value or one per channel (a,b,c).")
@click.option("--std", help="Divide after subtracting: one value or one per channel.")
@click.option(
    "--activations",
    type=click.Choice(("uint8", "int8")),
    default="uint8",
    show_default=True,
    help="int8 activation type.",
)
@click.option(
    "--weights",
    type=click.Choice(("int8", "uint8")),
    default="int8",
    show_default=True,
    help="int8 weight type.",
)
@click.option(
    "--per-channel/--per-tensor", default=True, show_default=True, help="Per-channel weight scales."
)
@click.option(
    "--reduce-range/--no-reduce-range",
    default=None,
    help="7-bit weights; default: from --int8-target (on for portable).",
)
@click.option(
    "--int8-target",
    type=click.Choice(TARGETS),
    help="CPUs the int8 model is for: portable (default: exact on every CPU), vnni (x86 with "
    "VNNI/AMX: a little more accurate, can lose accuracy elsewhere), arm. Recorded in the model.",
)
@click.option("--opset", type=click.IntRange(17), default=17, show_default=True)
@click.option(
    "--unsafe",
    is_flag=True,
    help="Allow unsafe deserialization (Lambda layers); only for files you trust.",
)
@click.option(
    "--engine-precision",
    type=click.Choice(("bf16", "f16")),
    help="Also run the written model on OpenVINO at this precision and report its top-1 "
    "agreement with fp32 on the verification images (needs edgecnn[openvino]).",
)
@click.option("--no-latency", is_flag=True, help="Skip the latency measurement.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines, only the summary.")
def export(model: str, output: str, quiet: bool, **flags: Any) -> None:
    """Export a Keras MODEL (a .keras file or a training run folder) to one verified ONNX file.

    The file takes uint8 images named 'image' (NHWC, any batch), outputs 'probabilities', and
    carries its labels and input spec. It is verified against Keras before it is written;
    OUT.report.json records size, parity, accuracy and latency.
    """
    from edgecnn.export import export_model

    log = None if quiet else (lambda msg: click.echo(f"... {msg}", err=True))
    result = export_model(model, output, _export_options(**flags), log=log)
    click.echo(as_flags(result.table()))
    if result.report_path is not None:
        click.echo(f"report: {result.report_path}")


def _export_options(
    *,
    output_kind: str,
    activations: str,
    weights: str,
    per_channel: bool,
    reduce_range: bool | None,
    calibration_method: str,
    int8_target: str | None,
    verify_dir: str | None,
    no_latency: bool,
    **same_name: Any,
) -> ExportOptions:
    """The flags as :class:`ExportOptions`. The grouped ones are named here (the model's input
    flags are read by :func:`pop_keras_inputs`, as eval reads them); the rest keep their field's
    name (``precision``, ``calibration``, ...), so a flag added without a place in
    :class:`ExportOptions` fails at once."""
    from edgecnn.export import ExportOptions
    from edgecnn.export.quantize import QuantSettings

    overrides, normalization = pop_keras_inputs(same_name, output=output_kind)
    return ExportOptions(
        overrides=overrides,
        normalization=normalization,
        verify=verify_dir,
        quant=QuantSettings(
            activations, weights, per_channel, reduce_range, calibration_method, int8_target
        ),
        latency=not no_latency,
        **same_name,
    )
