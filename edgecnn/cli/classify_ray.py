"""``edgecnn classify --engine ray``: the same rows, computed on a Ray cluster.

Imported only for ``--engine ray``: Ray is an optional extra (``pip install 'edgecnn[ray]'``).
Progress is Ray Data's own display on a terminal; when stderr is piped or redirected, Ray Data's
INFO logging and progress block are switched off in this (the CLI's own) process. The closing
summary has local classify's shape plus the cluster start-up time, the rows each node computed
and the providers the actors really ran.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, NamedTuple

import click

from edgecnn._deps import ray_data
from edgecnn.classify.result_files import display
from edgecnn.cli.flags import current_flags
from edgecnn.cli.options import ModelChoice
from edgecnn.scale import local_ray
from edgecnn.scale.dataset_pipeline import (
    PREPARE_CPUS,
    ModelHandle,
    classify_dataset,
    given_settings,
    open_model,
    parse_actors,
)
from edgecnn.scale.result_output import (
    PARQUET,
    RunTotals,
    check_output,
    done_paths_ref,
    output_kind,
    write_parquet,
    write_rows_file,
)


class RayRun(NamedTuple):
    """The classify options a Ray run uses."""

    sources: tuple[str, ...]
    output: str
    fmt: str | None
    resume: bool
    recursive: bool
    batch_size: int | None  # None: classify_dataset's default
    prepare_batch: int | None
    top_k: int
    quiet: bool


def classify_on_ray(choice: ModelChoice, run: RayRun, *, address: str | None, actors: str) -> None:
    """Start or join Ray, classify every input there, write the rows, print the summary."""
    rd = ray_data()
    import ray

    try:
        pool = parse_actors(actors)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--actors") from None
    kind = output_kind(run.output, run.fmt)
    check_output(run.output, kind, run.resume)
    say = (lambda message: None) if run.quiet else (lambda m: click.echo(m, err=True))
    started = time.perf_counter()
    local = address is None
    fresh = start_ray(address, run.quiet)
    quiet_ray_output(rd, interactive=sys.stderr.isatty() and not run.quiet)
    handle = open_model(choice.model, provider=choice.provider, foreign=choice.foreign)
    resources = ray.cluster_resources()
    if fresh:  # started on this machine: warm the processes decode tasks will run in
        local_ray.warm_up(pool[0], 1.0, PREPARE_CPUS)
    startup = time.perf_counter() - started
    say(
        f"ray: {'started here' if local else 'joined ' + address}: {len(ray.nodes())} node(s), "
        f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs, "
        f"in {startup:.1f} s"
    )
    done = done_paths_ref(run.output) if run.resume and kind == PARQUET else None
    dataset = classify_dataset(
        list(run.sources),
        handle,
        provider=choice.provider,
        foreign=choice.foreign,
        threads=choice.threads,
        top_k=run.top_k,
        recursive=run.recursive,
        actors=pool,
        done=done,
        names=current_flags(),  # rows say --logits, as local classify's do
        **given_settings(batch_size=run.batch_size, prepare_batch=run.prepare_batch),
    )
    began = time.perf_counter()
    try:
        if kind == PARQUET:
            totals = write_parquet(dataset, run.output)
        else:
            top_k = min(run.top_k, handle.spec.num_classes)
            totals = write_rows_file(dataset, run.output, kind, top_k)
    except KeyboardInterrupt:
        say(f"interrupted: files written so far stay in {display(run.output)}; --resume continues")
        sys.exit(130)
    seconds = time.perf_counter() - began
    if not run.quiet:
        click.echo(summary_text(totals, seconds, handle, choice.provider, run.output), err=True)
    if totals.total == 0 and not run.resume:
        raise click.ClickException("no inputs found (empty folders?)")
    if totals.total and totals.ok == 0:
        raise click.ClickException(f"nothing could be classified ({totals.failed} failed)")


def start_ray(address: str | None, quiet: bool) -> bool:
    """Join ``address``, or start Ray here (see :func:`edgecnn.scale.local_ray.start`) unless a
    library caller had started it already; True when a new instance was started here."""
    import ray

    if ray.is_initialized():
        return False
    options = {"log_to_driver": not quiet, "logging_level": "WARNING"}
    if address is None:
        return local_ray.start(include_dashboard=False, **options)
    ray.init(address=address, **options)
    return False


def quiet_ray_output(rd: Any, *, interactive: bool) -> None:
    """Progress bars only on a terminal; when piped, Ray Data's console logging drops to WARNING.

    Changes this process's Ray Data settings, which only the CLI may (it owns the process): a
    library caller of ``classify_dataset`` keeps whatever logging they configured."""
    rd.DataContext.get_current().enable_progress_bars = interactive
    if interactive:
        return
    from ray.util.debug import log_once

    # Ray Data says once, as a warning, that progress bars are off: we switched them off.
    log_once("ray_data_progress_manager_disabled")
    for handler in logging.getLogger("ray.data").handlers:
        # The console handler only: Ray Data's own log file (in the session folder) stays whole.
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            handler.setLevel(max(handler.level, logging.WARNING))


def summary_text(
    totals: RunTotals, seconds: float, handle: ModelHandle, provider: str, output: str
) -> str:
    """The closing summary: counts, speed, failures, stage p50 / p95, nodes, the providers the
    actors ran (``provider`` is the requested one, shown only when no row was computed), model."""
    rate = totals.total / seconds if seconds > 0 else 0.0
    lines = [f"{totals.ok} ok, {totals.failed} failed in {seconds:.2f} s ({rate:.1f} images/s)"]
    for source, error in totals.first_failures:
        lines.append(f"  failed: {display(source)}: {error}")
    if totals.failed > len(totals.first_failures):
        more = totals.failed - len(totals.first_failures)
        lines.append(f"  ... and {more} more (see the output)")
    cells = [
        f"{stage} {stats['p50']:.2f}/{stats['p95']:.2f}"
        for stage, stats in totals.stages_ms().items()
        if stats.get("count")
    ]
    if cells:
        lines.append("latency ms p50/p95 per image: " + ", ".join(cells))
    if totals.nodes:
        per_node = ", ".join(f"{node[:8]} {count}" for node, count in totals.nodes.most_common())
        lines.append(f"rows per node: {per_node}")
    # What the actors' engines really ran (DESIGN: report the provider that ran, not the request).
    ran = "; ".join(sorted(totals.providers)) or f"{provider} requested, no rows computed"
    lines.append(
        f"provider {ran}; model {display(handle.name)} "
        f"({handle.spec.precision}, {handle.spec.num_classes} classes, "
        f"sha256 {handle.sha256[:12]})"
    )
    lines.append(f"results: {display(output)}")
    return "\n".join(lines)
