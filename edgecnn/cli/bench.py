"""``edgecnn bench``: latency and throughput of models, model-only and end to end."""

from __future__ import annotations

import sys
from typing import Any

import click

from edgecnn.cli.flags import as_flags
from edgecnn.cli.options import foreign_model_options, pop_foreign, single_threaded_opencv
from edgecnn.runtime.classifier import Foreign
from edgecnn.tools.bench_settings import BenchError, Settings, parse_list
from edgecnn.tools.model_bench import Benchmark


def _progress(enabled: bool) -> Any:
    """A one-line progress indicator on a terminal; silent when stderr is piped."""
    if not enabled:
        return None

    def show(message: str) -> None:
        click.echo(f"\r\033[K{message}"[:200], nl=False, err=True)

    return show


@click.command()
@click.argument("models", nargs=-1, type=click.Path())
@click.option(
    "--provider",
    default="auto",
    show_default=True,
    help="auto, cpu, openvino, cuda or tensorrt; a comma-separated list, or all (auto plus "
    "every engine that loads here), measured side by side with the ratio to the fastest and "
    "top-1 agreement with onnxruntime CPU.",
)
@click.option("--batch-sizes", default="1,8,32", show_default=True, help="Comma-separated.")
@click.option(
    "--threads",
    default="1,auto",
    show_default=True,
    help="onnxruntime intra-op threads, comma-separated; auto = what classify uses.",
)
@click.option("--warmup", type=int, default=3, show_default=True, help="Untimed runs first.")
@click.option("--iterations", type=int, help="Timed runs per model and configuration.")
@click.option("--duration", type=float, help="Seconds per model and configuration [default: 2].")
@click.option(
    "--images",
    type=click.Path(),
    help="Folder of images: real input tensors, and the end-to-end pipeline measured too.",
)
@foreign_model_options(
    interpolation_help="Models without metadata (with --labels/--input-size): their resize "
    "interpolation [default: bilinear]. edgecnn models: the resize of the preprocessing "
    "measured (decode, fit, resize: --images, the pipeline, the Keras tutorial pipeline) "
    "instead of each model's own; the report names it beside the model's recorded one."
)
@click.option(
    "--keras",
    "keras_model",
    type=click.Path(dir_okay=False),
    help="The same network as a .keras file: Keras predict (and the tutorials' pipeline "
    "with --images) measured in the same run. Needs TensorFlow.",
)
@click.option(
    "--unsafe",
    is_flag=True,
    help="Allow a --keras model that needs unsafe deserialization (a Lambda layer's code runs "
    "when it loads): only for files you trust.",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write JSON here.")
@click.option("--markdown", "md_out", type=click.Path(dir_okay=False), help="Write Markdown here.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), help="Write a PNG plot here.")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no table on the terminal.")
@click.option(
    "--server",
    metavar="URL",
    help="Measure a running `edgecnn serve` end to end instead (MODELS: the served model's "
    "name; --images: files to post, default generated 640x480 JPEGs).",
)
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --server: clients posting at once.")  # fmt: skip
@click.option("--requests", "request_count", type=click.IntRange(min=1),
              help="With --server: requests to measure [default: --duration, 10 s].")  # fmt: skip
@click.option("--api-key-file", type=click.Path(dir_okay=False), help="With --server: the key.")
def bench(
    models: tuple[str, ...],
    provider: str,
    batch_sizes: str,
    threads: str,
    warmup: int,
    iterations: int | None,
    duration: float | None,
    images: str | None,
    keras_model: str | None,
    unsafe: bool,
    json_out: str | None,
    md_out: str | None,
    plot_out: str | None,
    quiet: bool,
    server: str | None,
    concurrency: int,
    request_count: int | None,
    api_key_file: str | None,
    **model_kwargs: Any,
) -> None:
    """Measure MODELS (default: the bundled model) side by side: latency statistics and
    images/s per batch size and thread count, after a separately reported warm-up.

    With --images DIR, also decode / preprocess / inference / postprocess per image and the
    whole pipeline as `edgecnn classify` runs it, against this machine's limit. Ctrl-C
    prints what was measured so far.

    MODELS without edgecnn metadata run with --labels, --input-size and the other flags that
    describe such a model (as in classify); they apply to every model of the run.

    With --server URL: latency percentiles and images/s of a running `edgecnn serve` at
    --concurrency clients.
    """
    foreign, interpolation = _foreign_and_override(model_kwargs, server)
    if server:
        _bench_server(
            server,
            models,
            images,
            concurrency,
            request_count,
            duration,
            api_key_file,
            json_out,
            quiet=quiet,
        )
        return
    single_threaded_opencv()
    _check_outputs(json_out, md_out, plot_out)
    settings = _settings(
        batch_sizes, threads, warmup, iterations, duration, provider, interpolation
    )
    progress = _progress(not quiet and sys.stderr.isatty())
    sources = {"images": images, "keras": keras_model, "unsafe": unsafe, "foreign": foreign}
    run = Benchmark(list(models), settings, progress=progress, **sources)
    report = _measure(run, progress is not None)
    _write_report(report, quiet, json_out, md_out, plot_out)
    if report["interrupted"]:
        sys.exit(130)


def _foreign_and_override(
    kwargs: dict[str, Any], server: str | None
) -> tuple[Foreign | None, str | None]:
    """The foreign-model flags (popped from ``kwargs``): the description of models without
    metadata, and the interpolation that overrides edgecnn models' own. With --labels /
    --input-size, --interpolation is part of the description (as in classify); without them,
    it is the override (any other description flag is then a usage error). Both are for models
    bench loads, not for a server's."""
    described = kwargs["labels"] is not None or kwargs["input_size"] is not None
    override = None if described else kwargs["interpolation"]
    if not described:
        kwargs["interpolation"] = None
    foreign = pop_foreign(kwargs)
    if server and (foreign is not None or override is not None):
        raise click.UsageError(
            "--labels, --input-size and --interpolation are for models bench loads; "
            "--server measures the served model with its own preprocessing"
        )
    return foreign, override


def _bench_server(
    server: str,
    models: tuple[str, ...],
    images: str | None,
    concurrency: int,
    request_count: int | None,
    duration: float | None,
    api_key_file: str | None,
    json_out: str | None,
    *,
    quiet: bool,
) -> None:
    """``--server URL``: a running ``edgecnn serve`` measured end to end."""
    from edgecnn.tools import server_bench

    report = server_bench.bench_command(
        server, models, images, concurrency, request_count, duration, api_key_file, json_out
    )
    if not quiet:
        click.echo(server_bench.terminal(report))


def _check_outputs(json_out: str | None, md_out: str | None, plot_out: str | None) -> None:
    """Output paths that cannot be written, and a plot without matplotlib, fail before minutes
    of measuring, not after."""
    from edgecnn.classify.result_files import check_writable

    outputs = {"--json": json_out, "--markdown": md_out, "--plot": plot_out}
    for flag, path in outputs.items():
        if path:
            check_writable(path, flag)
    if plot_out:
        from edgecnn.tools import plots

        plots.pyplot()  # matplotlib missing: say so now, not after the measurement


def _settings(
    batch_sizes: str,
    threads: str,
    warmup: int,
    iterations: int | None,
    duration: float | None,
    provider: str,
    interpolation: str | None,
) -> Settings:
    """The checked settings; settings that cannot run are usage errors (exit 2)."""
    try:
        return Settings(
            batch_sizes=tuple(b for b in parse_list(batch_sizes) if b is not None),
            threads=parse_list(threads, allow_auto=True),
            warmup=warmup,
            iterations=iterations,
            duration=duration,
            provider=provider,
            interpolation=interpolation,
        )
    except BenchError as exc:
        raise click.UsageError(as_flags(str(exc))) from None


def _measure(run: Benchmark, progress_shown: bool) -> dict[str, Any]:
    """Run the benchmark; Ctrl-C gives what was measured so far (exit 130 when nothing was)."""
    try:
        report = run.run()
    except KeyboardInterrupt:
        report = run.interrupt()
    finally:
        if progress_shown:
            click.echo("\r\033[K", nl=False, err=True)
    if not report["model_only"] and not report["end_to_end"]:
        if report["interrupted"]:
            click.echo("interrupted before anything was measured", err=True)
            sys.exit(130)
        raise BenchError("nothing was measured")
    return report


def _write_report(
    report: dict[str, Any],
    quiet: bool,
    json_out: str | None,
    md_out: str | None,
    plot_out: str | None,
) -> None:
    """The terminal table (unless ``quiet``) and the files asked for."""
    from edgecnn.tools import bench_report
    from edgecnn.tools.report_files import write_json, write_text

    if not quiet:
        click.echo(bench_report.terminal(report))
    if json_out:
        write_json(json_out, report, "--json")
    if md_out:
        write_text(md_out, bench_report.markdown(report), "--markdown")
    if plot_out:
        bench_report.plot(report, plot_out)
