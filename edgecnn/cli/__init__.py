"""The ``edgecnn`` command: a Click group whose verbs load lazily, one module per verb.

Lazy loading keeps ``edgecnn --help`` fast and guarantees that ``classify`` / ``live`` /
``bench`` never import TensorFlow: only the verb that runs is imported. Every verb raises
:class:`~edgecnn.errors.EdgecnnError` for expected failures; the group turns them into one
``Error: ...`` line and exit code 1. Click's usage errors exit with 2.

Library errors name API parameters in backquotes (`` `input_size` ``);
:func:`edgecnn.cli.flags.cli_message` turns each into the verb's flag (``--input-size``).
"""

from __future__ import annotations

import difflib
import importlib

import click

from edgecnn._version import __version__
from edgecnn.cli.flags import cli_message
from edgecnn.cli.quiet import quiet_environment, quiet_imports
from edgecnn.errors import EdgecnnError

#: verb -> (module, attribute, one-line help shown in ``edgecnn --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "classify": ("edgecnn.cli.classify", "classify", "Classify image files, folders and globs."),
    "live": ("edgecnn.cli.live", "live", "Label camera and video streams with an overlay."),
    "bench": ("edgecnn.cli.bench", "bench", "Measure latency and throughput."),
    "serve": ("edgecnn.cli.serve", "serve", "Serve models over HTTP with adaptive batching."),
    "train": ("edgecnn.cli.train", "train", "Train a classifier from a folder of images."),
    "dataset": ("edgecnn.cli.dataset", "dataset", "Inspect, split or generate image datasets."),
    "export": ("edgecnn.cli.export", "export", "Export a Keras model to a verified ONNX file."),
    "eval": ("edgecnn.cli.evaluate", "evaluate", "Accuracy and per-class metrics on a dataset."),
    "info": ("edgecnn.cli.info", "info", "Show what an edgecnn ONNX model carries."),
    "doctor": ("edgecnn.cli.doctor", "doctor", "Check this machine: versions, providers, camera."),
}


class LazyGroup(click.Group):
    """A group that imports a verb's module only when that verb is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute, _ = COMMANDS[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("edgecnn"):
                return None  # verb not built in this version
            raise
        return getattr(module, attribute)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else None
        if name and name not in COMMANDS and not name.startswith("-"):
            close = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.6)
            if close:  # `edgecnn clasify` -> did you mean classify
                ctx.fail(f"No such command {name!r}. Did you mean {close[0]!r}?")
        return super().resolve_command(ctx, args)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        # Before the verb's module (and OpenCV, TensorFlow) is imported: quiet unless -v.
        quiet_environment(bool(ctx.params.get("verbose")))
        quiet_imports(bool(ctx.params.get("verbose")))
        return rest

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as exc:
            if exc.option_name in ("-v", "--verbose"):  # `edgecnn train -v`: say where it goes
                exc.message = exc.message.rstrip(".") + ": -v goes before the verb, edgecnn -v VERB"
            raise
        except EdgecnnError as exc:  # expected failure: one line, exit 1
            name = ctx.invoked_subcommand
            command = self.get_command(ctx, name) if name else None
            raise click.ClickException(cli_message(str(exc), command)) from exc

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table, so --help imports no verb module.
        rows = [(name, help_) for name, (_, _, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgecnn")
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Show third-party start-up and library messages (TensorFlow, Qt, OpenCV, FFmpeg).",
)
def cli(verbose: bool) -> None:
    """edgecnn: small CNN image classifiers, trained in Keras, run anywhere on ONNX Runtime."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (Click's standalone mode handles exit codes)."""
    cli.main(args=argv, prog_name="edgecnn")


if __name__ == "__main__":
    main()
