"""``edgecnn classify``: label every image in files, folders and globs; rows to a table or file."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import click
from click.core import ParameterSource

from edgecnn.classify.input_discovery import Item, scan
from edgecnn.classify.result_files import (
    FORMATS,
    ConsoleTable,
    OutputError,
    ResultWriter,
    check_not_an_input,
    display,
    format_for,
)
from edgecnn.classify.result_resume import identity
from edgecnn.cli.flags import as_flags
from edgecnn.cli.options import (
    ModelChoice,
    model_options,
    pop_model_choice,
    single_threaded_opencv,
)
from edgecnn.cli.signals import EXIT_SIGTERM, Terminated, sigterm_as_interrupt
from edgecnn.preprocess import MAX_PIXELS
from edgecnn.runtime.batch_pipeline import Pipeline
from edgecnn.runtime.classifier import Classifier
from edgecnn.runtime.prediction import STAGES, Prediction
from edgecnn.tools.latency_stats import Tally

ENGINES = ("local", "ray")


def _usage(options: dict[str, Any]) -> None:
    """Usage errors found before the model loads and the inputs are scanned."""
    if options["resume"] and (not options["output"] or options["output"] == "-"):
        raise click.UsageError("--resume needs --output FILE")


@click.command()
@click.argument("sources", nargs=-1, required=True)
@model_options
@click.option(
    "--batch-size",
    "-b",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Images per inference call.",
)
@click.option(
    "--top-k",
    "-k",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Labels reported per image.",
)
@click.option("--output", "-o", help="Write rows to FILE (.csv or .jsonl; '-' for stdout).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="Output format when the extension does not say.",
)
@click.option("--resume", is_flag=True, help="Skip inputs already present in --output.")
@click.option("--recursive", "-r", is_flag=True, help="Walk sub-folders too.")
@click.option(
    "--workers", type=click.IntRange(min=1), help="Decoding threads (default: one per core)."
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=MAX_PIXELS,
    show_default=True,
    help="Images whose header declares more pixels are refused (an error row) before decoding.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="local",
    show_default=True,
    help="local: this machine. ray: a Ray cluster, rows to -o OUT (pip install 'edgecnn[ray]').",
)
@click.option(
    "--address",
    help="Ray: the cluster to join (auto: the one running here; ray://HOST:10001 through "
    "Ray Client). Default: start Ray on this machine.",
)
@click.option(
    "--actors",
    help="Ray: inference actors, N or MIN:MAX (default 1: up to half the cluster's CPUs, "
    "or one per GPU with a GPU provider).",
)
@click.option(
    "--prepare-batch",
    type=click.IntRange(min=1),
    help="Ray: inputs per decode task (default: ~32 MB of files by the first files' sizes, "
    "16 to 1024).",
)
def classify(
    sources: tuple[str, ...],
    batch_size: int,
    top_k: int,
    output: str | None,
    fmt: str | None,
    resume: bool,
    recursive: bool,
    workers: int | None,
    max_pixels: int,
    quiet: bool,
    engine: str,
    address: str | None,
    actors: str | None,
    prepare_batch: int | None,
    **model_kwargs: Any,
) -> None:
    """Classify SOURCES: image files, folders (sorted; -r for sub-folders) and glob patterns.

    Images are recognised by content. Every input gets a row: unreadable ones with status
    `error` and the reason. Exit code 0 when the run completed, 1 when nothing could be
    classified, the model is unusable or the output could not be written, 2 for usage errors,
    130 after Ctrl-C and 143 after SIGTERM (both keep the rows written and print the summary).

    With --engine ray, SOURCES may also be URIs pyarrow reads (s3://, gs://, file://) and
    OUT is a Parquet folder (or a .csv / .jsonl file for small runs).
    """
    choice = pop_model_choice(model_kwargs)
    if engine == "ray":
        from edgecnn.cli.classify_ray import RayRun, classify_on_ray

        if workers is not None:
            raise click.UsageError("--workers is for --engine local (Ray sizes its own tasks)")
        if not output or output == "-":
            raise click.UsageError("--engine ray writes its rows to -o OUT (a Parquet folder)")
        given = click.get_current_context().get_parameter_source("batch_size")
        batch = None if given is ParameterSource.DEFAULT else batch_size  # Ray's own default
        run = RayRun(sources, output, fmt, resume, recursive, batch, prepare_batch, top_k, quiet)
        classify_on_ray(choice, run, address=address, actors=actors or "1:")
        return
    if address or actors or prepare_batch:
        raise click.UsageError("--address, --actors and --prepare-batch are for --engine ray")
    _usage({"resume": resume, "output": output})
    single_threaded_opencv()
    classifier = _load(choice)
    local = LocalRun(sources, output, fmt, resume, recursive, batch_size, top_k, workers, quiet)
    classify_locally(classifier, local, max_pixels=max_pixels)


def _load(choice: ModelChoice) -> Classifier:
    return Classifier.load(  # decode workers share the cores: no spinning
        choice.model,
        provider=choice.provider,
        threads=choice.threads,
        foreign=choice.foreign,
        spinning=False,
    )


@dataclass(frozen=True)
class LocalRun:
    """What a local classify run was asked to do (the command line, minus the model)."""

    sources: tuple[str, ...]
    output: str | None
    fmt: str | None
    resume: bool
    recursive: bool
    batch_size: int
    top_k: int
    workers: int | None
    quiet: bool


def _open_writer(
    run: LocalRun, items: list[Item], top_k: int
) -> tuple[ResultWriter | None, list[Item]]:
    """The locked output (refused when it names an input), and the items left to do."""
    if not run.output:
        return None, items
    check_not_an_input(run.output, (item.path for item in items))
    writer = ResultWriter(run.output, format_for(run.output, run.fmt), top_k, append=run.resume)
    if run.resume:
        items = [item for item in items if identity(item.source) not in writer.done]
    return writer, items


def _in_flags(prediction: Prediction) -> Prediction:
    """A row whose error names an API parameter (`` `logits` ``) names this verb's flag instead
    (``--logits``), in the table and in the results file alike."""
    if prediction.error and "`" in prediction.error:
        return replace(prediction, error=as_flags(prediction.error))
    return prediction


def _inputs_and_writer(
    run: LocalRun, top_k: int, say: Callable[[str], None]
) -> tuple[ResultWriter | None, list[Item]]:
    """The inputs (notes said), the result file opened (None: the terminal table), and with
    ``--resume`` the inputs the file already holds left out."""
    found = scan(run.sources, recursive=run.recursive)
    for note in found.notes:
        say(f"note: {display(as_flags(note))}")
    if not found.items:
        raise click.ClickException("no inputs found (empty folders?)")
    writer, items = _open_writer(run, found.items, top_k)
    if run.resume:
        skipped = len(found.items) - len(items)
        say(f"resume: {skipped} input(s) already in {display(run.output or '')}, skipped")
    return writer, items


def classify_locally(
    classifier: Classifier, run: LocalRun, *, max_pixels: int = MAX_PIXELS
) -> None:
    """``--engine local``: decode in threads, infer here, rows to the terminal or a file."""
    top_k = min(run.top_k, classifier.spec.num_classes)
    quiet, output = run.quiet, run.output
    say = (lambda message: None) if quiet else (lambda message: click.echo(message, err=True))
    if classifier.provider_note:
        say(f"note: {classifier.provider_note}")
    writer, items = _inputs_and_writer(run, top_k, say)
    table = None if output else ConsoleTable(classifier.labels, top_k, echo=click.echo)
    show_bar = not quiet and sys.stderr.isatty() and (writer is not None or not sys.stdout.isatty())
    tally = Tally(STAGES)
    pipeline = Pipeline(
        classifier, batch_size=run.batch_size, workers=run.workers, top_k=top_k,
        max_pixels=max_pixels,
    )  # fmt: skip
    started = time.perf_counter()
    stopped: str | None = None
    exit_code = 0
    with sigterm_as_interrupt():
        try:
            with click.progressbar(
                length=len(items),
                label="classifying",
                file=sys.stderr,
                show_pos=True,
                show_eta=True,
                hidden=not show_bar,
                item_show_func=lambda rate: rate,
            ) as bar:
                for prediction in map(_in_flags, pipeline.run(items)):
                    if writer:
                        writer.write(prediction)
                    if table:
                        table.write(prediction)
                    tally.add(prediction.source, prediction.error, prediction.timings)
                    elapsed = time.perf_counter() - started
                    bar.update(1, f"{tally.total / elapsed:.1f} img/s" if elapsed > 0 else None)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
            stopped = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
            exit_code = EXIT_SIGTERM if isinstance(exc, Terminated) else 130
        except OutputError as exc:  # disk full, file too large: the rows written stay
            stopped = f"stopped: {exc}; the {writer.rows if writer else 0} row(s) written stay"
            exit_code = 1
        finally:
            if writer:
                writer.close()
        seconds = time.perf_counter() - started
        if not quiet or exit_code == 1:
            text = summary_text(classifier, tally, seconds, len(items), stopped, output)
            click.echo(text if not quiet else text.splitlines()[0], err=True)
    if exit_code:
        sys.exit(exit_code)
    if items and tally.ok == 0:
        raise click.ClickException(f"nothing could be classified ({len(tally.failed)} failed)")


def summary_text(
    classifier: Classifier,
    tally: Tally,
    seconds: float,
    planned: int,
    stopped: str | None,
    output: str | None,
) -> str:
    """The closing summary: why it stopped early, counts, speed, per-stage p50 / p95, provider,
    model. ``stopped``: why the run ended before every input was done (None: it completed)."""
    summary: dict[str, Any] = tally.summary(seconds)
    lines = []
    if stopped:
        lines.append(f"{stopped} after {tally.total} of {planned} inputs")
    speed = f" ({summary['images_per_second']:.1f} images/s)" if summary["ok"] else ""
    lines.append(f"{summary['ok']} ok, {summary['failed']} failed in {seconds:.2f} s{speed}")
    for source, error in tally.failed[:10]:
        lines.append(f"  failed: {display(source)}: {display(as_flags(error))}")
    if len(tally.failed) > 10:
        lines.append(f"  ... and {len(tally.failed) - 10} more (see the output file)")
    stage_cells = []
    for stage, stats in summary["stages_ms"].items():
        if stats.get("count"):
            stage_cells.append(f"{stage} {stats['p50']:.2f}/{stats['p95']:.2f}")
    if stage_cells:
        lines.append("latency ms p50/p95 per image: " + ", ".join(stage_cells))
    lines.append(
        f"provider {classifier.provider}; model {display(classifier.path)} "
        f"({classifier.spec.precision}, {classifier.spec.num_classes} classes)"
    )
    if output and output != "-":
        lines.append(f"results: {display(output)}")
    return "\n".join(lines)
