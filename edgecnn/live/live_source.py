"""Cameras and network streams (or a video played in real time): a grabber thread keeps only
the newest frame, counts the ones nobody took as dropped (a slow model never builds latency), and
reopens a stream that stopped with back-off when ``reconnect``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import cv2

from edgecnn.errors import SourceError
from edgecnn.live.frame_source_base import Frame, FrameSource, Notify, stamp
from edgecnn.live.source_uris import NETWORK_TIMEOUT_MS, Location, open_capture

#: Back-off between reconnection attempts (seconds): doubles from the first to the last value.
BACKOFF = (0.5, 10.0)


class LiveSource(FrameSource):
    """A camera or network stream (or a file played in real time): a grabber thread keeps only
    the newest frame; frames nobody took before the next one arrived are counted as dropped."""

    live = True
    join_timeout = NETWORK_TIMEOUT_MS / 1000 + 1  # a grab may block until the network timeout

    def __init__(
        self,
        location: Location,
        every: int = 1,
        reconnect: bool = False,
        loop: bool = False,
        notify: Notify | None = None,
    ) -> None:
        super().__init__(location, notify)
        self.every = max(1, every)
        self.reconnect = reconnect
        self.loop = loop
        self.reconnects = 0
        self._capture: cv2.VideoCapture | None = None  # the grabber thread takes it over
        self._first_failure = ""
        try:
            self._capture = open_capture(location)
        except SourceError as exc:
            # A camera that boots after the edge box is the usual case: with reconnect, the
            # first open is retried like any later one (files are not waited for).
            if not (reconnect and location.kind in ("url", "camera")):
                raise
            self.notify(f"{exc}; retrying until it opens")
            self._first_failure = str(exc)
        fps = self._capture.get(cv2.CAP_PROP_FPS) if self._capture is not None else 0
        self.fps = fps if fps and 0 < fps < 1000 else None
        self._paced = location.kind == "video"  # a file played as if it were a camera
        self._cond = threading.Condition()
        self._newest: Frame | None = None
        self._done = False

    # ----------------------------------------------------------------- grabber thread
    def _grab_loop(self) -> None:
        index = 0
        capture: cv2.VideoCapture | None = self._capture
        start = time.perf_counter()
        paced = 0
        try:
            while not self._stop.is_set():
                if capture is None or not capture.grab():
                    capture = self._recover(capture)
                    if capture is None:
                        return
                    start, paced = time.perf_counter(), 0
                    continue
                if self._paced and self.fps:
                    paced += 1
                    delay = start + paced / self.fps - time.perf_counter()
                    if delay > 0 and self._stop.wait(delay):
                        return
                now, wall = stamp()
                if index % self.every:
                    self.skipped += 1
                else:
                    ok, image = capture.retrieve()
                    if ok:
                        self._publish(Frame(index, image, now, wall, f"{self.name}#{index}"))
                index += 1
        except Exception as exc:  # an OpenCV failure in the thread ends the stream, said so
            self.ended = f"capture failed: {exc}"
        finally:
            if capture is not None:
                capture.release()
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _publish(self, frame: Frame) -> None:
        with self._cond:
            if self._newest is not None:
                self.dropped += 1
            self._newest = frame
            self._cond.notify_all()

    def _recover(self, capture: cv2.VideoCapture | None) -> cv2.VideoCapture | None:
        """After the stream stopped: reopen it with back-off (``reconnect``/``loop``) or end."""
        if capture is not None:
            capture.release()
        if self._paced and not self.loop:
            self.ended = "end of file"
            return None
        if not (self.reconnect or self.loop):
            self.ended = "stream ended"
            self.notify(f"{self.name}: stopped delivering frames (use `reconnect` to reopen it)")
            return None
        delay = BACKOFF[0] if not self._paced else 0.0
        opened_before = capture is not None
        last_failure = "" if opened_before else self._first_failure
        while not self._stop.is_set():
            if delay:
                if opened_before:
                    self.notify(f"{self.name}: stopped delivering frames; reopening in {delay:g} s")
                if self._stop.wait(delay):
                    return None
            try:
                capture = open_capture(self.location)
            except SourceError as exc:
                if str(exc) != last_failure:  # the same cause again is not news
                    self.notify(f"reconnect failed: {exc}")
                    last_failure = str(exc)
                delay = min(max(delay * 2, BACKOFF[0]), BACKOFF[1])
                continue
            if not opened_before:
                self.notify(f"{self.name}: opened")
                fps = capture.get(cv2.CAP_PROP_FPS)
                self.fps = fps if fps and 0 < fps < 1000 else None
            elif not self._paced:  # a looping file restarting is not a reconnection
                self.reconnects += 1
                self.notify(f"{self.name}: reopened (reconnect {self.reconnects})")
            return capture
        return None

    # ----------------------------------------------------------------- consumer side
    def __iter__(self) -> Iterator[Frame]:
        if self._start_reader(self._grab_loop) is None:
            return
        while True:
            with self._cond:
                while self._newest is None and not self._done and not self._stop.is_set():
                    self._cond.wait(0.2)
                frame, self._newest = self._newest, None
            if frame is None:
                return
            yield frame

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()

    def close(self) -> None:
        self._stop.set()
        with self._cond:  # wake the consumer now rather than at its next poll
            self._cond.notify_all()
        super().close()
