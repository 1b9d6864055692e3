"""Live labelling: frames from a camera, stream, video or image folder -> labels, events, outputs.

The Python API::

    from edgecnn.live.stream import Stream
    from edgecnn.runtime.classifier import Classifier

    with Stream(Classifier.load(), "0", smooth=5) as stream:
        for result in stream:                 # one FrameResult per labelled frame
            if result.changed:
                print(result.index, result.label, result.score)
    print(stream.summary().text())

or :func:`run` with outputs (:mod:`edgecnn.live.frame_outputs`: a window, a browser preview, an
annotated
video, JSON lines, console lines), as ``edgecnn live`` does. Every frame goes through the same
preprocessing as ``classify`` (:meth:`Classifier.prepare`; image files are decoded by
:func:`edgecnn.preprocess.decode` with the model's input spec, as ``classify`` decodes them).
With ``smooth`` > 1 the label is a moving average of the last N probability vectors with
hysteresis, and an *event* is a label change; otherwise every frame is an event.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.classify.result_files import display
from edgecnn.errors import ImageError
from edgecnn.live.frame_outputs import Output, check_paths, close_all, open_outputs
from edgecnn.live.frame_result import FrameResult
from edgecnn.live.frame_source_base import Frame, FrameSource, Notify
from edgecnn.live.frame_sources import describe, open_source
from edgecnn.live.overlay import Annotation, annotate
from edgecnn.runtime.classifier import Classifier
from edgecnn.runtime.prediction import Prediction
from edgecnn.tools.latency_stats import Tally, latency_stats

__all__ = [
    "LIVE_STAGES",
    "FrameResult",
    "Smoother",
    "Stream",
    "Summary",
    "play",
    "run",
]

#: Stages timed per frame (milliseconds); "latency" is capture -> label.
LIVE_STAGES = ("preprocess", "inference", "postprocess", "latency")
#: How much the smoothed score of a new label must exceed the current one's to take over.
HYSTERESIS = 0.1
_UNSET = object()  # "no label reported yet" (None means "uncertain")


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
        lines.append(f"source {display(self.source)}; provider {self.provider}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- the stream
class Stream:
    """Labelled frames from a source, one :class:`FrameResult` per frame handed out.

    ``source``: a URI (see :mod:`edgecnn.live.frame_sources`) or an open :class:`FrameSource`.
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
                spec=classifier.spec.input,
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


# --------------------------------------------------------------------------- driving outputs
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


def run(
    classifier: Classifier,
    source: str | int | FrameSource = "0",
    *,
    show: bool | None = False,
    serve: str | None = None,
    save: str | None = None,
    jsonl: str | None = None,
    console: bool | str = False,
    notify: Notify | None = None,
    verbose: Notify | None = None,
    **stream_options: Any,
) -> Summary:
    """Label ``source`` into any combination of outputs and return the summary.

    ``show``: a window (None = where a display exists). ``serve``: ``HOST:PORT`` of a browser
    preview. ``save``: annotated video path. ``jsonl``: events file (``-``: stdout).
    ``console``: lines on stdout, one per event (True or "event") or one per second
    ("second"). ``notify``: warnings and notes (reconnects,
    truncated files, outputs that failed to close). ``verbose``: the source line before the
    first frame, then the summary and what each output wrote, also when the run fails.
    ``stream_options`` go to :class:`Stream`. Output paths are checked before the source opens
    and unusable outputs fail before the first frame; a failure during the run propagates after
    every output was closed (what they wrote stays valid).
    """
    tell = verbose or (lambda message: None)
    check_paths(save=save, jsonl=jsonl)
    stream = Stream(classifier, source, notify=notify, **stream_options)
    try:
        outputs = open_outputs(
            stream.source,
            stream.is_event,
            stream.describe(),
            show=show,
            serve=serve,
            save=save,
            jsonl=jsonl,
            console=console,
            notify=notify,
        )
    except BaseException:
        stream.close()
        raise
    model = display(os.fsdecode(classifier.path))
    tell(f"source: {stream.describe()}; model {model} on {classifier.provider}")
    try:
        play(stream, outputs)
    finally:
        problems = close_all(outputs)
        stream.close()
        tell(stream.summary().text())
        for output in outputs:
            line = output.report()
            if line:
                tell(line)
        for problem in problems:
            if notify:
                notify(f"warning: closing {problem}")
    return stream.summary()
