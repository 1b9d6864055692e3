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

This module opens the right source; the parts live beside it: ``source_uris`` (URI ->
:class:`Location`, OpenCV captures), ``frame_source_base`` (:class:`Frame`, :class:`FrameSource`),
``file_sources`` (videos, image folders) and ``live_source`` (cameras, network streams).
"""

from __future__ import annotations

import os

from edgecnn.live.file_sources import ImageFolderSource, VideoFileSource
from edgecnn.live.frame_source_base import FrameSource, Notify
from edgecnn.live.live_source import LiveSource
from edgecnn.live.source_uris import locate
from edgecnn.spec import InputSpec


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
