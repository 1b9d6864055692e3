"""``edgecnn train DATA_DIR --arch NAME --out RUN_DIR``: a thin wrapper over edgecnn.train.train.

Only the architecture registry is imported to build ``--help``; TensorFlow loads when training
starts (a missing install is one ``Error:`` line naming the extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edgecnn.errors import EdgecnnError
from edgecnn.spec import parse_size
from edgecnn.train.architectures import ARCHITECTURES, DEFAULT_ARCH, get_architecture

if TYPE_CHECKING:
    from edgecnn.train.trainer import TrainResult


def _arch_table() -> str:
    rows = []
    for a in ARCHITECTURES.values():
        h, w = a.input_size
        rows.append(
            f"{a.name:<16} {f'{h}x{w}x{a.channels}':<10} {a.optimizer:<7} lr {a.learning_rate:<7g} "
            f"epochs {a.epochs:<3} batch {a.batch_size:<3} {a.output:<13} {a.summary}"
        )
    return "\n".join(rows)


def _list_archs(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_arch_table())
        ctx.exit()


@click.command()
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option(
    "--arch",
    type=click.Choice(list(ARCHITECTURES)),
    default=DEFAULT_ARCH,
    show_default=True,
    help="Network (see --list-archs).",
)
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Run folder [default: runs/ARCH]."
)
@click.option("--input-size", default=None, help="Override the input size, HxW or N.")
@click.option(
    "--color", type=click.Choice(["rgb", "gray"]), default=None, help="Override the colour mode."
)
@click.option(
    "--num-classes",
    type=click.IntRange(2),
    default=None,
    help="Expected number of classes (checked against the class folders).",
)
@click.option("--epochs", type=click.IntRange(1), default=None, help="Maximum epochs.")
@click.option("--batch-size", type=click.IntRange(1), default=None)
@click.option("--learning-rate", "--lr", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--optimizer", type=click.Choice(["adam", "rmsprop", "sgd"]), default=None)
@click.option(
    "--patience",
    type=click.IntRange(0),
    default=None,
    help="Early-stopping patience in epochs (0: never stop early) [default: a quarter of "
    "--epochs, at least the architecture's; stopping is only considered in the second half "
    "of the epochs, after the learning rate was halved on the plateau].",
)
@click.option(
    "--monitor",
    type=click.Choice(["val_accuracy", "val_loss"]),
    default=None,
    help="Metric for early stopping and the best checkpoint.",
)
@click.option(
    "--augment",
    default="default",
    show_default=True,
    help="'default', 'none' or a list like flip,vflip,rotation=0.25,zoom,"
    "translation,brightness,contrast (strengths 0..1).",
)
@click.option(
    "--val-split",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.2,
    show_default=True,
    help="Validation fraction when there is no validation/.",
)
@click.option(
    "--test-split",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Test fraction carved from a flat dataset.",
)
@click.option(
    "--weights",
    default=None,
    help="Transfer-learning architectures: the backbone's starting weights, imagenet (from "
    "Keras' cache ~/.keras/models), none, or a weights FILE [default: imagenet].",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=None, help="Decode threads.")
@click.option("--force", is_flag=True, help="Overwrite a run folder that holds a model.")
@click.option(
    "--list-archs",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_list_archs,
    help="List the architectures and their defaults, then exit.",
)
def train(
    data_dir: Path,
    arch: str,
    out: Path | None,
    input_size: str | None,
    num_classes: int | None,
    force: bool,
    **options: Any,
) -> None:
    """Train a classifier on DATA_DIR (DATA_DIR/<class>/ or DATA_DIR/train/<class>/).

    The flags named like :class:`~edgecnn.train.train_settings.TrainOptions` fields arrive in
    ``options`` and become one (the option list is not repeated here).
    """
    from edgecnn.train.train_settings import TrainOptions
    from edgecnn.train.trainer import train as run_train

    try:
        size = parse_size(input_size) if input_size else None
    except ValueError as exc:
        raise EdgecnnError(str(exc)) from None
    result = run_train(
        data_dir,
        get_architecture(arch).name,
        out or Path("runs") / arch,
        TrainOptions(input_size=size, **options),
        num_classes=num_classes,
        force=force,
        log=click.echo,
        warn=lambda message: click.echo(message, err=True),
    )
    _report(result)


def _report(result: TrainResult) -> None:
    """The test report, the skipped-file count and the one-line result."""
    if result.test_report is not None:
        from edgecnn.tools.metrics import format_report

        click.echo(format_report(result.test_report))
    if result.skipped:
        click.echo(
            f"{len(result.skipped)} unreadable file(s) skipped (listed in config.json)", err=True
        )
    click.echo(
        f"best val_accuracy {result.val_accuracy:.4f} at epoch {result.best_epoch} "
        f"({result.epochs_run} run, {result.seconds:.0f}s); model in {result.model_path}"
    )
