"""Frame sources for ``live``, named by URI: cameras, video files, network streams, image folders.

``open_source("0")`` opens camera 0; ``/dev/video2`` a V4L2 device; ``clip.mp4`` (or
``file://clip.mp4``) a video file; ``rtsp://``, ``http(s)://`` or any URL OpenCV's FFmpeg opens a
network stream; a folder or a glob pattern of images is played as a stream, in sorted order.

Two timings, because two kinds of source need opposite behaviour:

* **live** (cameras, URLs): a grabber thread reads as fast as the device delivers and keeps only
  the newest frame; a frame replaced before anyone took it is *dropped* (and counted), so a slow
  model never builds latency. A stream that stops is reopened with back-off when ``reconnect``.
* **files** (videos, images): every frame, in order (or every n-th with ``every``); a reader
  thread decodes the next frames while the model runs. A truncated video ends cleanly.

Image files are decoded by :func:`edgecnn.preprocess.decode` with the model's input spec (the
reduced-size JPEG decode, the pixel-count guard, the truncated-JPEG check), so ``live`` on a
folder sees exactly the pixels ``classify`` sees. OpenCV is never handed a path that is not
valid UTF-8 (its C++ API crashes on them): images are read by Python, and such a video, device
or URL is refused with a :class:`SourceError`.

Only the reader thread releases a capture it has started reading (in its ``finally``), so
:meth:`FrameSource.close` is safe from any thread.

Each :class:`Frame` carries its capture time (``time.perf_counter()`` just after the grab), so
the caller can report capture-to-label latency.
"""

from __future__ import annotations

import contextlib
import glob
import os
import queue
import re
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from edgecnn.classify.input_discovery import scan
from edgecnn.classify.result_files import display
from edgecnn.errors import SourceError
from edgecnn.image_files import is_glob, is_image
from edgecnn.preprocess import decode
from edgecnn.spec import InputSpec

Notify = Callable[[str], None]

#: How long OpenCV's FFmpeg backend may wait to open / read a network stream (ms).
NETWORK_TIMEOUT_MS = 10_000
#: Back-off between reconnection attempts (seconds): doubles from the first to the last value.
BACKOFF = (0.5, 10.0)

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass(frozen=True)
class Frame:
    """One frame: BGR pixels (None when an image could not be read: see ``error``)."""

    index: int  #: position in the source (captured frames counted, dropped ones included)
    image: np.ndarray | None  #: BGR; gray ``HxW`` for a gray model's image files
    captured: float  #: ``time.perf_counter()`` when the frame was grabbed / decoded
    timestamp: float  #: wall-clock ``time.time()`` at the same moment
    name: str  #: printable origin, e.g. ``clip.mp4#12`` or an image path
    error: str | None = None


@dataclass(frozen=True)
class Location:
    """A parsed source URI: what kind of source it is and what OpenCV is given."""

    kind: str  #: "camera", "url", "video", "images"
    target: int | str
    name: str

    @property
    def live(self) -> bool:
        """True for sources that produce frames in real time (cameras, network streams)."""
        return self.kind in ("camera", "url")


def locate(source: str | int | os.PathLike[str]) -> Location:
    """Parse a source URI; raises :class:`SourceError` for paths that do not exist."""
    if isinstance(source, int):
        return Location("camera", source, f"camera {source}")
    text = os.fsdecode(source)
    if text.strip().isdigit():
        return Location("camera", int(text), f"camera {int(text)}")
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif _URL.match(text):
        return Location("url", _for_opencv(text, "URL"), _redact(text))
    name = display(text)
    if text.startswith("/dev/"):
        if not os.path.exists(text):
            raise SourceError(f"{name}: no such camera device")
        return Location("camera", _for_opencv(text, "device path"), name)
    if os.path.isdir(text):
        return Location("images", text, name)
    if os.path.isfile(text):
        if is_image(text):
            return Location("images", text, name)
        return Location("video", _for_opencv(text, "video path"), name)
    if is_glob(text):
        return Location("images", text, name)
    if os.path.lexists(text):
        raise SourceError(f"{name}: not a regular file, folder or device")
    raise SourceError(f"{name}: no such file, folder, camera index or URL")


def _for_opencv(text: str, what: str) -> str:
    """``text`` unchanged when OpenCV can be given it: VideoCapture has no bytes API and
    crashes on a str holding undecodable (surrogate-escaped) bytes, so those are refused."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SourceError(
            f"{display(text)}: this {what} is not valid UTF-8, and OpenCV cannot open such "
            "names; rename it (or link it under a UTF-8 name)"
        ) from None
    return text


def _redact(url: str) -> str:
    """A URL safe to print: the password of ``user:pass@host`` replaced by ``***``."""
    return re.sub(r"(://[^/:@]+:)[^/@]*@", r"\1***@", url)


def open_capture(location: Location) -> cv2.VideoCapture:
    """Open an OpenCV capture for a camera, URL or video file; :class:`SourceError` if it fails."""
    target = location.target
    started = time.perf_counter()
    if location.kind == "url":
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            NETWORK_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            NETWORK_TIMEOUT_MS,
        ]
        capture = cv2.VideoCapture(str(target), cv2.CAP_FFMPEG, params)
    elif location.kind == "camera" and (isinstance(target, str) or sys.platform == "linux"):
        capture = cv2.VideoCapture(target, cv2.CAP_V4L2)  # not every backend in turn
    elif location.kind == "video":
        capture = cv2.VideoCapture(str(target), cv2.CAP_FFMPEG)
    else:
        capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        capture.release()
        why = {
            "camera": "no such camera, or it is busy / not permitted",
            "url": "",
            "video": "not a video OpenCV can decode (corrupt or truncated?)",
        }[location.kind]
        if location.kind == "url":
            why = url_failure(str(target), time.perf_counter() - started)
        if location.kind == "camera" and sys.platform == "linux":
            found = sorted(glob.glob("/dev/video*"))
            why += f"; video devices here: {', '.join(found) if found else 'none'}"
        raise SourceError(f"{location.name}: cannot open ({why})")
    if location.kind == "camera":
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # hint only: the grabber drains it anyway
    return capture


_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "http": 80, "https": 443}


def url_failure(url: str, elapsed_s: float) -> str:
    """Why a stream URL did not open, found by connecting to its host ourselves (OpenCV's FFmpeg
    backend only says "not opened"): host unknown, connection refused, no answer, or a server
    that answered but whose stream FFmpeg could not read."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return f"bad port in the URL ({parts.netloc.rsplit(':', 1)[-1]})"
    if not host or port is None:
        return "not a stream OpenCV's FFmpeg can read"
    timeout = NETWORK_TIMEOUT_MS / 1000
    try:
        with socket.create_connection((host, port), timeout=max(1.0, timeout - elapsed_s)):
            pass
    except socket.gaierror:
        return f"host {host} not found"
    except ConnectionRefusedError:
        return f"connection refused by {host}:{port} (nothing listening: device off or wrong port?)"
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:g} s"
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"
    if elapsed_s >= timeout * 0.9:
        return f"{host}:{port} accepts connections but sent no stream within {timeout:g} s"
    return (
        f"{host}:{port} answered, but not with a stream OpenCV's FFmpeg can read "
        "(wrong path or credentials, or an unsupported codec?)"
    )


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


def _stamp() -> tuple[float, float]:
    return time.perf_counter(), time.time()


class _FileSource(FrameSource):
    """Base of the file sources (videos, image folders): every frame (every ``every``-th) in
    order, produced by :meth:`_frames` in the reader thread up to two frames ahead."""

    _END = object()

    def __init__(
        self, location: Location, every: int = 1, loop: bool = False, notify: Notify | None = None
    ) -> None:
        super().__init__(location, notify)
        self.every = max(1, every)
        self.loop = loop
        self._queue: queue.Queue[object] = queue.Queue(maxsize=2)

    def _frames(self) -> Iterator[Frame]:
        """The frames, read in the reader thread; its ``finally`` releases what it holds."""
        raise NotImplementedError

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            with contextlib.closing(self._frames()) as frames:  # its finally runs in this thread
                for frame in frames:
                    if not self._put(frame):
                        return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
            return
        self._put(self._END)

    def __iter__(self) -> Iterator[Frame]:
        if self._start_reader(self._work) is None:
            return
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]


class VideoFileSource(_FileSource):
    """Every frame of a video file in order (every ``every``-th), decoded one step ahead."""

    def __init__(
        self, location: Location, every: int = 1, loop: bool = False, notify: Notify | None = None
    ) -> None:
        super().__init__(location, every, loop, notify)
        self._capture = open_capture(location)  # fail now, before anything starts
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and fps > 0 else None
        self.announced = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def _frames(self) -> Iterator[Frame]:
        index = 0
        capture = self._capture
        try:
            while not self._stop.is_set():
                position = 0
                while not self._stop.is_set():
                    if position % self.every:
                        ok = capture.grab()  # skipped: no colour conversion
                        if ok:
                            self.skipped += 1
                    else:
                        ok, image = capture.read()
                        if ok:
                            now, wall = _stamp()
                            yield Frame(index, image, now, wall, f"{self.name}#{position}")
                    if not ok:
                        break
                    position += 1
                    index += 1
                if self._stop.is_set():
                    return
                if 0 < position < self.announced - max(2, self.announced // 50):  # estimates vary
                    self.notify(
                        f"{self.name}: ended after {position} of the {self.announced} frames its "
                        "header announces (truncated or corrupt file?)"
                    )
                if not self.loop or position == 0:
                    self.ended = "end of file" if position else "no readable frames"
                    return
                capture.release()
                capture = open_capture(self.location)
        finally:
            capture.release()

    def _release(self) -> None:
        self._capture.release()


class ImageFolderSource(_FileSource):
    """Images of a folder or glob pattern, in sorted order, as a stream; unreadable files come
    through as frames carrying their error, so each file yields exactly one result.

    Files are decoded by :func:`edgecnn.preprocess.decode` with ``spec`` (the model's input),
    exactly as ``classify`` decodes them; without a spec, at full size in BGR."""

    def __init__(
        self,
        location: Location,
        spec: InputSpec | None = None,
        every: int = 1,
        loop: bool = False,
        notify: Notify | None = None,
    ) -> None:
        super().__init__(location, every, loop, notify)
        self.spec = spec or InputSpec(1, 1)
        self._reduce = spec is not None
        found = scan([str(location.target)])
        for note in found.notes:
            self.notify(note)
        self.items = [item for item in found.items if item.path is not None]
        if not self.items:
            reason = found.items[0].error if found.items else "no files in it"
            raise SourceError(f"{location.name}: no images to play ({reason})")

    def _frames(self) -> Iterator[Frame]:
        index = 0
        while not self._stop.is_set():
            for position, item in enumerate(self.items):
                if self._stop.is_set():
                    return
                if position % self.every:
                    self.skipped += 1
                else:
                    yield self._read(index, item.path or "")
                index += 1
            if not self.loop:
                self.ended = "end of images"
                return

    def _read(self, index: int, path: str) -> Frame:
        image, error = None, None
        try:
            image = decode(path, self.spec, reduce=self._reduce)
        except Exception as exc:  # ImageError and friends: one result row with the reason
            error = getattr(exc, "reason", None) or str(exc)
        now, wall = _stamp()
        return Frame(index, image, now, wall, path, error)


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
                now, wall = _stamp()
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


def open_source(
    source: str | int | os.PathLike[str],
    *,
    every: int = 1,
    reconnect: bool = False,
    realtime: bool | None = None,
    loop: bool = False,
    spec: InputSpec | None = None,
    notify: Notify | None = None,
) -> FrameSource:
    """Open a frame source by URI (see the module doc). Raises :class:`SourceError` naming the
    source when it cannot be opened at all.

    ``realtime``: None = by kind (cameras and URLs live, files every frame); True plays a video
    file at its frame rate with newest-frame semantics (rehearse a camera offline); False reads
    a network stream frame by frame. ``loop`` restarts files at their end. ``spec``: the
    model's input, with which image files are decoded exactly as ``classify`` decodes them.
    """
    location = locate(source)
    live = location.live if realtime is None else realtime
    if location.kind == "images":
        return ImageFolderSource(location, spec, every, loop, notify)
    if live:
        return LiveSource(location, every, reconnect, loop, notify)
    return VideoFileSource(location, every, loop, notify)


def describe(source: FrameSource) -> str:
    """One line about an open source: kind, name, timing and nominal frame rate."""
    every = source.every
    if source.live:
        mode = "live: newest frame" + (f", labelling 1 in {every}" if every > 1 else "")
    else:
        mode = f"1 frame in {every}" if every > 1 else "every frame"
    fps = f", {source.fps:g} fps" if source.fps else ""
    return f"{source.location.kind} {source.name} ({mode}{fps})"
