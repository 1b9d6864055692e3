"""Live labelling: frames from a camera, stream, video or image folder -> labels, events, outputs.

The Python API::

    from edgecnn.live import Stream
    from edgecnn.runtime import Classifier

    with Stream(Classifier.load(), "0", smooth=5) as stream:
        for result in stream:                 # one FrameResult per labelled frame
            if result.changed:
                print(result.index, result.label, result.score)
    print(stream.summary().text())

or :func:`run` with outputs (a window, a browser preview, an annotated video, JSON lines), as
``edgecnn live`` does. Every frame goes through the same preprocessing as ``classify``
(:meth:`Classifier.prepare`). With ``smooth`` > 1 the label is a moving average of the last N
probability vectors with hysteresis, and an *event* is a label change; otherwise every frame is
an event.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any

import cv2
import numpy as np

from edgecnn.errors import EdgecnnError, ImageError
from edgecnn.overlay import Annotation, annotate
from edgecnn.preview import Preview, parse_address
from edgecnn.result import Prediction
from edgecnn.runtime import Classifier
from edgecnn.sinks import check_writable
from edgecnn.stats import Tally, latency_stats
from edgecnn.streams import Frame, FrameSource, Notify, describe, open_source

#: Stages timed per frame (milliseconds); "latency" is capture -> label.
LIVE_STAGES = ("preprocess", "inference", "postprocess", "latency")
#: How much the smoothed score of a new label must exceed the current one's to take over.
HYSTERESIS = 0.1
_UNSET = object()  # "no label reported yet" (None means "uncertain")
#: Video containers and the FourCC written into them.
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class FrameResult:
    """One labelled frame: the raw prediction, the (smoothed) label and its timings."""

    index: int  #: frame position in the source
    name: str  #: printable origin (``clip.mp4#12``, an image path, ``camera 0#40``)
    captured: float  #: ``perf_counter()`` at capture
    timestamp: float  #: wall clock at capture
    prediction: Prediction  #: this frame's own top-k (or its error)
    label: str | None  #: the label to act on (smoothed, above min_score), None = uncertain
    score: float | None  #: its (smoothed) probability
    changed: bool  #: ``label`` differs from the previous frame's: an event when smoothing
    latency_ms: float  #: capture -> label
    fps: float  #: labelled frames per second over the last second or so
    dropped: int  #: frames dropped so far (live sources)
    frame: np.ndarray | None = field(default=None, repr=False)  #: the BGR frame

    @property
    def inference_ms(self) -> float | None:
        """Model time for this frame."""
        return self.prediction.timings.get("inference")

    def event(self) -> dict[str, Any]:
        """A JSON-ready event: frame, time, label and score, top-k, latency, error."""
        stamp = datetime.fromtimestamp(self.timestamp, timezone.utc)
        return {
            "frame": self.index,
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "source": self.name,
            "label": self.label,
            "score": None if self.score is None else round(self.score, 6),
            "changed": self.changed,
            "top": [{"label": lb, "score": round(sc, 6)} for lb, sc in self.prediction.top],
            "latency_ms": round(self.latency_ms, 3),
            "inference_ms": None if self.inference_ms is None else round(self.inference_ms, 3),
            "error": self.prediction.error,
        }


class Smoother:
    """Moving average of the last ``window`` probability vectors plus hysteresis.

    A new label takes over only when its average beats the current label's by
    :data:`HYSTERESIS` and reaches ``min_score``; the current label is kept until its average
    falls below ``min_score - HYSTERESIS`` (then the label is None: uncertain). With
    ``window`` 1 there is no hysteresis: the label is the frame's top-1 if >= ``min_score``.
    """

    def __init__(self, labels: Sequence[str], window: int = 1, min_score: float = 0.0) -> None:
        self.labels = tuple(labels)
        self.window = max(1, window)
        self.min_score = min_score
        self._history: deque[np.ndarray] = deque(maxlen=self.window)
        self.current: int | None = None

    def update(self, probabilities: np.ndarray) -> tuple[str | None, float | None]:
        """Add one frame's probabilities; return the label to report and its smoothed score."""
        self._history.append(np.asarray(probabilities, np.float64))
        mean = np.mean(self._history, axis=0)
        best = int(np.argmax(mean))
        margin = HYSTERESIS if self.window > 1 else 0.0
        current = self.current
        if current is None:
            if mean[best] >= self.min_score + (margin if self.min_score > 0 else 0.0):
                current = best
        elif best != current and mean[best] >= max(self.min_score, mean[current] + margin):
            current = best
        elif mean[current] < self.min_score - margin:
            current = None
        self.current = current
        if current is None:
            return None, None
        return self.labels[current], float(mean[current])


# --------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class Summary:
    """How a run went: counts, speed, latency statistics and why it ended."""

    source: str
    frames: int  #: results produced (labelled + failed)
    labelled: int
    failed: int
    dropped: int
    skipped: int
    events: int
    seconds: float
    latency_ms: dict[str, float]  #: capture -> label statistics (see ``latency_stats``)
    inference_ms: dict[str, float]
    ended: str
    provider: str
    reconnects: int = 0

    @property
    def fps(self) -> float:
        """Frames labelled per second of the run."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {**self.__dict__, "fps": self.fps}

    def text(self) -> str:
        """The closing summary printed by ``edgecnn live``."""
        lines = [
            f"{self.ended}: {self.frames} frames ({self.labelled} labelled, {self.failed} "
            f"failed), {self.dropped} dropped, {self.skipped} skipped, {self.events} events "
            f"in {self.seconds:.2f} s ({self.fps:.1f} FPS)"
        ]
        if self.latency_ms.get("count"):
            lat, inf = self.latency_ms, self.inference_ms
            lines.append(
                f"capture-to-label ms p50 {lat['p50']:.1f} / p95 {lat['p95']:.1f}; "
                f"inference ms p50 {inf['p50']:.2f} / p95 {inf['p95']:.2f}"
            )
        if self.reconnects:
            lines.append(f"reconnected {self.reconnects} time(s)")
        lines.append(f"source {self.source}; provider {self.provider}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- the stream
class Stream:
    """Labelled frames from a source, one :class:`FrameResult` per frame handed out.

    ``source``: a URI (see :mod:`edgecnn.streams`) or an open :class:`FrameSource`.
    ``every``: label one frame in N. ``smooth``: frames averaged for the label (events only
    on change). ``min_score``: below it the label is None. ``max_frames``: stop after N
    results. ``reconnect``: reopen a stream that stops. ``realtime``: see ``open_source``.
    Opening raises :class:`~edgecnn.errors.SourceError` naming a source that cannot be opened.
    """

    def __init__(
        self,
        classifier: Classifier,
        source: str | int | FrameSource = "0",
        *,
        every: int = 1,
        top_k: int = 1,
        smooth: int = 1,
        min_score: float = 0.0,
        max_frames: int | None = None,
        reconnect: bool = False,
        realtime: bool | None = None,
        loop: bool = False,
        keep_frames: bool = True,
        notify: Notify | None = None,
    ) -> None:
        if every < 1 or smooth < 1 or top_k < 1:
            raise ValueError("every, smooth and top_k must be at least 1")
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be between 0 and 1, not {min_score}")
        self.classifier = classifier
        self.top_k = min(top_k, classifier.spec.num_classes)
        self.smoothing = smooth > 1
        self.max_frames = max_frames
        self.keep_frames = keep_frames
        self._smoother = Smoother(classifier.labels, smooth, min_score)
        if isinstance(source, FrameSource):
            self.source = source
        else:
            self.source = open_source(
                source,
                every=every,
                reconnect=reconnect,
                realtime=realtime,
                loop=loop,
                notify=notify,
            )
        self.tally = Tally(LIVE_STAGES)
        self.events = 0
        self._stop_reason: str | None = None
        self._ended: str | None = None
        self._started: float | None = None
        self._finished: float | None = None
        self._recent: deque[float] = deque(maxlen=32)
        self._lock = threading.Lock()
        self._previous: object = _UNSET  # the last label reported, for change events

    def describe(self) -> str:
        """One line about the source."""
        return describe(self.source)

    def stop(self, reason: str = "stopped") -> None:
        """Ask the iteration to end after the current frame (safe from any thread)."""
        with self._lock:
            self._stop_reason = self._stop_reason or reason
        self.source.close()

    def _label(self, frame: Frame) -> FrameResult:
        timings: dict[str, float] = {}
        label = score = None
        if frame.image is None:
            prediction = Prediction(frame.name, error=frame.error or "no image")
        else:
            try:
                t0 = time.perf_counter()
                prepared = self.classifier.prepare(frame.image, color_order="bgr")
                t1 = time.perf_counter()
                probs = self.classifier.run(prepared[np.newaxis])[0]
                t2 = time.perf_counter()
                top = self.classifier.top(probs, self.top_k)
                label, score = self._smoother.update(probs)
                t3 = time.perf_counter()
                timings = {
                    "preprocess": (t1 - t0) * 1e3,
                    "inference": (t2 - t1) * 1e3,
                    "postprocess": (t3 - t2) * 1e3,
                }
                prediction = Prediction(frame.name, top=top, timings=timings)
            except ImageError as exc:
                prediction = Prediction(frame.name, error=exc.reason)
        done = time.perf_counter()
        latency = (done - frame.captured) * 1e3
        previous = self._previous
        changed = prediction.ok and (previous is _UNSET or label != previous)
        if prediction.ok:
            self._previous = label
        self._recent.append(done)
        span = self._recent[-1] - self._recent[0]
        fps = (len(self._recent) - 1) / span if span > 0 else 0.0
        self.tally.add(frame.name, prediction.error, {**timings, "latency": latency})
        return FrameResult(
            index=frame.index,
            name=frame.name,
            captured=frame.captured,
            timestamp=frame.timestamp,
            prediction=prediction,
            label=label,
            score=score,
            changed=changed,
            latency_ms=latency,
            fps=fps,
            dropped=self.source.dropped,
            frame=frame.image if self.keep_frames else None,
        )

    def __iter__(self) -> Iterator[FrameResult]:
        self._previous = _UNSET
        self._started = time.perf_counter()
        try:
            for frame in self.source:
                result = self._label(frame)
                if self.is_event(result):
                    self.events += 1
                yield result
                if self.max_frames is not None and self.tally.total >= self.max_frames:
                    self._stop_reason = self._stop_reason or "max frames reached"
                if self._stop_reason:
                    break
        except KeyboardInterrupt:
            self._stop_reason = self._stop_reason or "interrupted"
            raise
        finally:
            self._finished = time.perf_counter()
            self._ended = self._stop_reason or self.source.ended or "stopped"

    def is_event(self, result: FrameResult) -> bool:
        """Per-frame events without smoothing; label changes (and errors) with it."""
        return not self.smoothing or result.changed or not result.prediction.ok

    def close(self) -> None:
        """Release the source (idempotent)."""
        self.source.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def summary(self) -> Summary:
        """Totals so far (valid at any moment, also after a failure)."""
        end = self._finished or time.perf_counter()
        seconds = end - self._started if self._started is not None else 0.0
        samples = self.tally.samples
        ended = self._stop_reason or self._ended or "running"
        return Summary(
            source=self.source.name,
            frames=self.tally.total,
            labelled=self.tally.ok,
            failed=len(self.tally.failed),
            dropped=self.source.dropped,
            skipped=self.source.skipped,
            events=self.events,
            seconds=seconds,
            latency_ms=latency_stats(samples["latency"]),
            inference_ms=latency_stats(samples["inference"]),
            ended=ended,
            provider=self.classifier.provider,
            reconnects=getattr(self.source, "reconnects", 0),
        )


# --------------------------------------------------------------------------- outputs
def display_problem() -> str | None:
    """Why no window can be opened here (None when one can).

    Checked without touching OpenCV's GUI in this process, because Qt / GTK abort the whole
    process when there is no display: environment first, then OpenCV's GUI backend, then a
    window opened in a child process.
    """
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display (DISPLAY / WAYLAND_DISPLAY not set: headless or SSH session?)"
    match = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    if match is None or match.group(1).upper() == "NONE":
        return "this OpenCV has no GUI backend (opencv-python-headless?)"
    probe = "import cv2; cv2.namedWindow('edgecnn'); cv2.waitKey(1); cv2.destroyAllWindows()"
    try:
        child = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not test a window ({exc})"
    if child.returncode != 0:
        where = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or "the display"
        last = (child.stderr.strip().splitlines() or ["no message"])[-1][:160]
        return f"OpenCV cannot open a window on {where} ({last})"
    return None


class Output:
    """An output of a live run: ``write`` gets each result (and the annotated frame when
    ``wants_image``); returning False ends the run (q / Esc in the window)."""

    wants_image = False

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> bool | None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release (called once, also after a failure)."""


class WindowOutput(Output):
    """An OpenCV window; q or Esc (or closing the window) ends the run."""

    wants_image = True

    def __init__(self, title: str = "edgecnn live") -> None:
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> bool:
        if annotated is not None:
            cv2.imshow(self.title, annotated)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), ord("Q"), 27):
            return False
        return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        cv2.destroyWindow(self.title)
        cv2.waitKey(1)


class VideoOutput(Output):
    """The annotated frames as a video file (``mp4v`` in .mp4/.mov/.mkv, ``MJPG`` in .avi),
    opened at the first frame's size; later frames of another size are letterboxed into it.

    The video keeps the source's timing: for files it is written at ``fps / every``; for live
    sources each annotated frame is repeated over the frames dropped after it (up to one
    second), so the recording plays back in real time however slow the model was."""

    wants_image = True

    def __init__(self, path: str, fps: float | None, *, every: int = 1, live: bool = False) -> None:
        check_writable(path, "--save")
        extension = os.path.splitext(path)[1].lower()
        if extension not in FOURCC:
            raise EdgecnnError(
                f"--save {path}: unknown video type {extension or '(none)'}; "
                f"use one of {', '.join(FOURCC)}"
            )
        self.path = path
        self.fourcc = FOURCC[extension]
        nominal = fps if fps and fps > 0 else 30.0
        self.live = live
        self.fps = nominal if live else nominal / max(1, every)
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._pending: tuple[int, np.ndarray] | None = None  # live: last frame, its index

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> None:
        if annotated is None:
            return
        if self._writer is None:
            height, width = annotated.shape[:2]
            writer = cv2.VideoWriter(
                self.path, cv2.VideoWriter.fourcc(*self.fourcc), self.fps, (width, height)
            )
            if not writer.isOpened():
                raise EdgecnnError(
                    f"--save {self.path}: OpenCV cannot write {self.fourcc} video here"
                )
            self._writer, self.size = writer, (width, height)
        if (annotated.shape[1], annotated.shape[0]) != self.size:
            annotated = _letterbox(annotated, self.size)
        if not self.live:
            self._put(annotated, 1)
            return
        if self._pending is not None:  # hold the previous frame over the frames dropped since
            index, previous = self._pending
            self._put(previous, max(1, min(result.index - index, round(self.fps))))
        self._pending = (result.index, annotated)

    def _put(self, image: np.ndarray, times: int) -> None:
        assert self._writer is not None
        for _ in range(times):
            self._writer.write(image)
        self.frames += times

    def close(self) -> None:
        if self._writer is not None:
            if self._pending is not None:
                self._put(self._pending[1], 1)
                self._pending = None
            self._writer.release()
            self._writer = None


def _letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    new = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    out = np.zeros((height, width, 3), np.uint8)
    x, y = (width - new[0]) // 2, (height - new[1]) // 2
    out[y : y + new[1], x : x + new[0]] = cv2.resize(image, new, interpolation=cv2.INTER_AREA)
    return out


class JsonlOutput(Output):
    """One JSON line per event, flushed per line (a crash leaves only complete lines)."""

    def __init__(self, path: str, is_event: Callable[[FrameResult], bool]) -> None:
        check_writable(path, "--jsonl")
        self.path = path
        self.is_event = is_event
        self._stdout = path == "-"
        try:
            self._fh: IO[str] = sys.stdout if self._stdout else open(path, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise EdgecnnError(f"--jsonl {path}: cannot write: {exc.strerror or exc}") from exc

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> None:
        if self.is_event(result):
            self._fh.write(json.dumps(result.event(), ensure_ascii=False) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._stdout:
            self._fh.flush()
        else:
            self._fh.close()


class PreviewOutput(Output):
    """Feeds the browser preview (:class:`~edgecnn.preview.Preview`) with each annotated frame."""

    wants_image = True

    def __init__(self, address: str, title: str = "") -> None:
        host, port = parse_address(address)
        self.preview = Preview(host, port, title=title).start()

    @property
    def url(self) -> str:
        """The page to open."""
        return self.preview.url

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> None:
        state = {
            **result.event(),
            "fps": round(result.fps, 2),
            "dropped": result.dropped,
            "running": True,
        }
        self.preview.publish(annotated, state)

    def close(self) -> None:
        self.preview.close()


class ConsoleOutput(Output):
    """One human line per event on stdout."""

    def __init__(self, is_event: Callable[[FrameResult], bool]) -> None:
        self.is_event = is_event

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> None:
        if not self.is_event(result):
            return
        if not result.prediction.ok:
            line = f"{result.name}: error: {result.prediction.error}"
        else:
            shown = result.label or "(uncertain)"
            score = "" if result.score is None else f" {result.score:.3f}"
            line = (
                f"{result.name}: {shown}{score}  "
                f"({result.inference_ms or 0:.1f} ms inference, {result.latency_ms:.1f} ms e2e)"
            )
        print(line, flush=True)


def play(stream: Stream, outputs: Sequence[Output]) -> None:
    """Drive ``stream`` through ``outputs`` until it ends, an output asks to stop (q / Esc) or
    Ctrl-C. Outputs are not closed here (the caller does, in ``finally``)."""
    visual = any(output.wants_image for output in outputs)
    try:
        for result in stream:
            annotated = None
            if visual and result.frame is not None:
                annotated = annotate(
                    result.frame,
                    Annotation(
                        top=result.prediction.top,
                        label=result.label,
                        smoothed=stream.smoothing,
                        fps=result.fps or None,
                        inference_ms=result.inference_ms,
                        latency_ms=result.latency_ms,
                        dropped=result.dropped,
                        error=result.prediction.error,
                    ),
                )
            for output in outputs:
                if output.write(result, annotated) is False:
                    stream.stop("quit from the window")
    except KeyboardInterrupt:
        stream.stop("interrupted")
    except Exception as exc:  # the summary says why the run ended; the caller reports it
        stream.stop(f"failed ({type(exc).__name__})")
        raise


def close_all(outputs: Sequence[Output]) -> list[str]:
    """Close every output even if some fail; return the failures' messages."""
    problems = []
    for output in outputs:
        try:
            output.close()
        except Exception as exc:
            problems.append(f"{type(output).__name__}: {exc}")
    return problems


def open_outputs(
    stream: Stream,
    *,
    show: bool | None = False,
    serve: str | None = None,
    save: str | None = None,
    jsonl: str | None = None,
    console: bool = False,
    notify: Notify | None = None,
) -> list[Output]:
    """Open the requested outputs for ``stream``, failing (with nothing left open) when one is
    unusable: a missing folder, a port in use. ``show`` None means a window only where a display
    exists; ``show`` True without one is a warning, not an abort."""
    say = notify or (lambda message: None)
    for path, what in ((save, "--save"), (jsonl, "--jsonl")):
        if path:
            check_writable(path, what)
    outputs: list[Output] = []
    try:
        if jsonl:
            outputs.append(JsonlOutput(jsonl, stream.is_event))
        if save:
            source = stream.source
            every = getattr(source, "every", 1)
            outputs.append(VideoOutput(save, source.fps, every=every, live=source.live))
        if serve:
            preview = PreviewOutput(serve, title=stream.describe())
            outputs.append(preview)
            say(f"preview: {preview.url}")
            if preview.preview.host not in ("127.0.0.1", "::1", "localhost"):
                say("the preview is reachable from the network, without authentication")
        if show is not False:
            problem = display_problem()
            if problem is None:
                outputs.append(WindowOutput())
            elif show:
                say(
                    f"warning: --show ignored: {problem}; watch with --serve HOST:PORT in a "
                    "browser, or write --save OUT.mp4"
                )
        if console and jsonl != "-":
            outputs.append(ConsoleOutput(stream.is_event))
    except BaseException:
        close_all(outputs)
        raise
    return outputs


def run(
    classifier: Classifier,
    source: str | int | FrameSource = "0",
    *,
    show: bool | None = False,
    serve: str | None = None,
    save: str | None = None,
    jsonl: str | None = None,
    notify: Notify | None = None,
    **stream_options: Any,
) -> Summary:
    """Label ``source`` into any combination of outputs and return the summary.

    ``show``: a window (None = where a display exists). ``serve``: ``HOST:PORT`` of a browser
    preview. ``save``: annotated video path. ``jsonl``: events file. ``stream_options`` go to
    :class:`Stream`. Unusable outputs fail before the first frame; a failure during the run
    propagates after every output was closed (what they wrote stays valid).
    """
    for path, what in ((save, "--save"), (jsonl, "--jsonl")):
        if path:
            check_writable(path, what)
    with Stream(classifier, source, notify=notify, **stream_options) as stream:
        outputs = open_outputs(
            stream, show=show, serve=serve, save=save, jsonl=jsonl, notify=notify
        )
        try:
            play(stream, outputs)
        finally:
            for problem in close_all(outputs):
                if notify:
                    notify(f"warning: closing {problem}")
    return stream.summary()
