"""File sources for ``live``: video files and image folders / globs, every frame (or every
``every``-th) in order, decoded by a reader thread up to two frames ahead. A truncated video ends
cleanly (and says so); an unreadable image comes through as a frame carrying its error.

Image files are decoded by :func:`edgecnn.preprocess.decode` with the model's input spec, so
``live`` on a folder sees exactly the pixels ``classify`` sees.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator

import cv2

from edgecnn.classify.input_discovery import scan
from edgecnn.errors import SourceError
from edgecnn.live.frame_source_base import Frame, FrameSource, Notify, stamp
from edgecnn.live.source_uris import Location, open_capture
from edgecnn.preprocess import decode
from edgecnn.spec import InputSpec


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
                            now, wall = stamp()
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
        now, wall = stamp()
        return Frame(index, image, now, wall, path, error)
