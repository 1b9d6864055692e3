"""What every ``live`` source shares: :class:`Frame` (pixels, index, capture time) and the
:class:`FrameSource` base (one reader thread that alone releases the device or file, so
:meth:`FrameSource.close` is safe from any thread)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from edgecnn.live.source_uris import Location

Notify = Callable[[str], None]


@dataclass(frozen=True)
class Frame:
    """One frame: BGR pixels (None when an image could not be read: see ``error``)."""

    index: int  #: position in the source (captured frames counted, dropped ones included)
    image: np.ndarray | None  #: BGR; gray ``HxW`` for a gray model's image files
    captured: float  #: ``time.perf_counter()`` when the frame was grabbed / decoded
    timestamp: float  #: wall-clock ``time.time()`` at the same moment
    name: str  #: printable origin, e.g. ``clip.mp4#12`` or an image path
    error: str | None = None


class FrameSource:
    """Base of the frame sources: iterate :class:`Frame` objects, then :meth:`close`.

    A source reads in one thread of its own (started by :meth:`_start_reader`); from then on
    that thread alone releases the device or file, in its ``finally``, so closing from any
    thread never frees a capture while it is being read."""

    live = False
    #: Label one frame in ``every`` (file sources and live sources set it; 1 = every frame).
    every = 1
    #: How long :meth:`close` waits for the reader thread to finish (seconds).
    join_timeout = 2.0

    def __init__(self, location: Location, notify: Notify | None = None) -> None:
        self.location = location
        self.name = location.name
        self.notify: Notify = notify or (lambda message: None)
        #: Frames replaced by a newer one before they could be labelled (live sources).
        self.dropped = 0
        #: Frames passed over on purpose (``every``).
        self.skipped = 0
        #: Nominal frames per second (None when unknown).
        self.fps: float | None = None
        #: Why the source ended, once it has ("end of file", "stream ended", ...).
        self.ended: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def _start_reader(self, target: Callable[[], None]) -> threading.Thread | None:
        """Start the reader thread once (None when the source was closed before it started)."""
        with self._lock:
            if self._reader is None and not self._stop.is_set():
                self._reader = threading.Thread(target=target, name="edgecnn-reader", daemon=True)
                self._reader.start()
            return self._reader

    def _release(self) -> None:
        """Free what the constructor opened; called by :meth:`close` only if no reader ran."""

    def close(self) -> None:
        """Stop reading and release the device or file (idempotent, safe from any thread)."""
        with self._lock:
            self._stop.set()
            reader = self._reader
        if reader is None:
            self._release()
        elif reader is not threading.current_thread():
            reader.join(self.join_timeout)  # it releases the capture itself, in its finally

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stamp() -> tuple[float, float]:
    """``time.perf_counter()`` and ``time.time()`` now: a frame's capture time, both clocks."""
    return time.perf_counter(), time.time()
