"""SIGTERM (``docker stop``, ``systemctl stop``, ``kill``) ends a run like Ctrl-C does.

The first SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``, so every ``finally``
and ``except KeyboardInterrupt`` that closes outputs and prints the summary runs); later ones
while that shutdown runs are ignored, so the summary is never lost to an impatient second
signal. The verb then exits with 143 (128 + SIGTERM), as a service manager expects.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Exit status after SIGTERM (128 + 15), as a shell reports a process that SIGTERM ended.
EXIT_SIGTERM = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by the first SIGTERM."""


class SigtermState:
    """Whether SIGTERM arrived inside :func:`sigterm_as_interrupt` (code that swallowed the
    interrupt to end a run cleanly can still exit with :data:`EXIT_SIGTERM`)."""

    def __init__(self) -> None:
        self.received = False


@contextmanager
def sigterm_as_interrupt() -> Iterator[SigtermState]:
    """Within the block, SIGTERM raises :class:`Terminated` once; the handler is restored after."""
    state = SigtermState()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def interrupt(signum: int, frame: object) -> None:
        if state.received:
            return  # already shutting down: keep the summary
        state.received = True
        raise Terminated

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield state
    finally:
        signal.signal(signal.SIGTERM, previous)
