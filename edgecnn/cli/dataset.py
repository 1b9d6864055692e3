"""``edgecnn dataset inspect | split | shapes``: look at, split or generate image datasets."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from edgecnn.errors import DatasetError
from edgecnn.printable import printable as display
from edgecnn.spec import parse_size

DEFAULT_PER_CLASS = 600
DEFAULT_SIZE = "128"


def _progress(label: str) -> Callable[[int, int], None] | None:
    """A carriage-return progress counter on a terminal, silent when piped."""
    if not sys.stderr.isatty():
        return None

    def report(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        click.echo(f"\r{label} {done}/{total}", nl=False, err=True)
        if end:
            click.echo("", err=True)

    return report


@click.group()
def dataset() -> None:
    """Inspect, split or generate image-folder datasets (DIR/<class>/ or DIR/train/<class>/)."""


@dataset.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option("--workers", type=click.IntRange(1), default=None, help="Decode threads.")
def inspect(directory: Path, as_json: bool, workers: int | None) -> None:
    """Counts per class and split, imbalance, image sizes, colour anomalies, unreadable files."""
    from edgecnn.data.dataset_inspection import format_inspection
    from edgecnn.data.dataset_inspection import inspect as run_inspect

    report = run_inspect(directory, workers=workers, progress=_progress("checked"))
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(format_inspection(report))


@dataset.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option(
    "--ratios",
    default="0.7,0.15,0.15",
    show_default=True,
    help="train,validation[,test] fractions adding up to 1.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Shuffle seed.")
@click.option(
    "--link", is_flag=True, help="Hard-link files (symlink across file systems) instead of copying."
)
def split(src: Path, dst: Path, ratios: str, seed: int, link: bool) -> None:
    """Split a flat SRC/<class>/ dataset into DST/train|validation|test/<class>/."""
    from edgecnn.data.dataset_splits import parse_ratios
    from edgecnn.data.split_on_disk import split_dataset

    skipped: list[tuple[str, str]] = []
    counts = split_dataset(src, dst, parse_ratios(ratios), seed, link=link, skipped=skipped)
    for path, reason in skipped:
        click.echo(f"skipped: {display(path)}: {reason}", err=True)
    for name, by_label in counts.items():
        detail = ", ".join(f"{label} {n}" for label, n in by_label.items())
        click.echo(f"{name:>10}: {sum(by_label.values()):>6}  ({detail})")
    click.echo(f"{'linked' if link else 'copied'} into {dst}")


@dataset.command()
@click.argument("dst", type=click.Path(path_type=Path))
@click.option(
    "--per-class",
    type=click.IntRange(1),
    default=DEFAULT_PER_CLASS,
    show_default=True,
    help="Images per shape.",
)
@click.option(
    "--size", default=DEFAULT_SIZE, show_default=True, help="Image size HxW (or N for square)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Generator seed.")
@click.option(
    "--format", "fmt", type=click.Choice(["jpg", "png"]), default="jpg", show_default=True
)
@click.option(
    "--ratios",
    default=None,
    help="Write DST/train|validation[|test]/ with these fractions (default: flat).",
)
@click.option("--workers", type=click.IntRange(1), default=None, help="Drawing threads.")
def shapes(
    dst: Path,
    per_class: int,
    size: str,
    seed: int,
    fmt: str,
    ratios: str | None,
    workers: int | None,
) -> None:
    """Generate the shapes dataset (circle, square, star, triangle) into DST."""
    from edgecnn.data.dataset_splits import parse_ratios
    from edgecnn.data.shapes import generate_shapes

    try:
        hw = parse_size(size)
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    t0 = time.perf_counter()
    counts = generate_shapes(
        dst,
        per_class,
        hw,
        seed,
        fmt,
        ratios=parse_ratios(ratios) if ratios else None,
        workers=workers,
        progress=_progress("drawn"),
    )
    total = sum(n for by in counts.values() for n in by.values())
    click.echo(
        f"wrote {total} images ({hw[0]}x{hw[1]} {fmt}) to {dst} in {time.perf_counter() - t0:.1f}s"
    )
    for name, by_label in counts.items():
        click.echo(f"  {name}: " + ", ".join(f"{lb} {n}" for lb, n in by_label.items()))
