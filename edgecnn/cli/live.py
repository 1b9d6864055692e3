"""``edgecnn live``: label a camera, stream, video or image folder frame by frame, with outputs."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from edgecnn.cli.flags import cli_message
from edgecnn.cli.options import with_classifier
from edgecnn.cli.signals import EXIT_SIGTERM, Terminated, sigterm_as_interrupt
from edgecnn.errors import EdgecnnError
from edgecnn.live.stream import run
from edgecnn.printable import printable_lines
from edgecnn.runtime.classifier import Classifier


@click.command()
@click.option(
    "--source",
    "-s",
    default="0",
    show_default=True,
    help="Camera index, /dev/videoN, video file, rtsp:// or http(s):// URL, image folder or glob.",
)
@with_classifier
@click.option(
    "--show/--no-show",
    default=None,
    help="Window with the annotated stream (q / Esc quits) [default: where a display exists].",
)
@click.option("--serve", metavar="HOST:PORT", help="Browser preview, e.g. 127.0.0.1:8080.")
@click.option("--save", metavar="OUT.mp4", help="Write the annotated video (.mp4 .avi .mkv).")
@click.option(
    "--jsonl",
    metavar="EVENTS.jsonl",
    help="Events as JSON lines ('-' for stdout): one per frame, or per label change with --smooth.",
)
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after N frames.")
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Label one frame in N.",
)
@click.option(
    "--top-k",
    "-k",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Labels shown and reported per frame.",
)
@click.option(
    "--smooth",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Average N frames, with hysteresis; events only when the label changes.",
)
@click.option(
    "--min-score",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Below this (smoothed) score the label is 'uncertain' (null).",
)
@click.option(
    "--reconnect", is_flag=True, help="Reopen a stream that stops delivering, with back-off."
)
@click.option(
    "--realtime/--no-realtime",
    default=None,
    help="Play a video file at its frame rate keeping only the newest frame, as a camera "
    "would (--no-realtime: read a stream frame by frame) [default: by source kind].",
)
@click.option("--loop", is_flag=True, help="Restart a video file or image folder at its end.")
@click.option(
    "--console",
    "console_mode",
    type=click.Choice(("second", "event")),
    default="second",
    show_default=True,
    help="Lines on stdout: a summary per second (FPS, labels, latency), or one per event "
    "(every frame, or each label change with --smooth).",
)
@click.option("--quiet", "-q", is_flag=True, help="No console lines and no summary.")
def live(
    classifier: Classifier,
    source: str,
    show: bool | None,
    serve: str | None,
    save: str | None,
    jsonl: str | None,
    max_frames: int | None,
    every: int,
    top_k: int,
    smooth: int,
    min_score: float,
    reconnect: bool,
    realtime: bool | None,
    loop: bool,
    console_mode: str,
    quiet: bool,
) -> None:
    """Label every frame of a camera, stream, video file or image folder.

    The overlay shows the top-k labels with confidence bars, FPS and latencies. Live sources
    label the newest frame and count the frames dropped; files give every frame. Ctrl-C, q /
    Esc in the window, --max-frames or the end of the input end the run with a summary
    (exit code 0; 143 after SIGTERM, also with the summary); unusable sources and outputs are
    one-line errors (exit code 1).
    """
    say, note = _messages(click.get_current_context().command, quiet)
    if classifier.provider_note:
        say(f"note: {classifier.provider_note}")
    with sigterm_as_interrupt() as term:
        try:
            summary = run(
                classifier,
                source,
                show=show,
                serve=serve,
                save=save,
                jsonl=jsonl,
                console=False if quiet else console_mode,
                notify=note,
                verbose=say,
                every=every,
                top_k=top_k,
                smooth=smooth,
                min_score=min_score,
                max_frames=max_frames,
                reconnect=reconnect,
                realtime=realtime,
                loop=loop,
            )
        except Terminated:  # SIGTERM before the first frame: nothing to summarise
            sys.exit(EXIT_SIGTERM)
    if term.received:  # the run ended on SIGTERM: outputs closed, summary printed
        sys.exit(EXIT_SIGTERM)
    if summary.frames and not summary.labelled:
        raise EdgecnnError(f"no frame could be labelled ({summary.failed} failed)")


def _messages(
    command: click.Command, quiet: bool
) -> tuple[Callable[[str], None], Callable[[str], None]]:
    """``say`` (verbose lines, silent with -q) and ``note`` (reconnects, truncation, warnings:
    shown even with -q); both name this command's flags where the library names parameters.
    ``command`` is captured up front: notes may come from a source's thread (no Click context).
    """

    def as_flags(message: str) -> str:
        return cli_message(message, command)

    def say(message: str) -> None:
        if not quiet:
            click.echo(printable_lines(as_flags(message)), err=True)

    def note(message: str) -> None:
        message = as_flags(message)
        click.echo(
            printable_lines(
                message if message.startswith(("warning", "preview")) else f"note: {message}"
            ),
            err=True,
        )

    return say, note
