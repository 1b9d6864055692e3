"""FrameResult: one labelled frame, as the live stream yields it and every output receives it.

Its own module because both sides use it: :mod:`edgecnn.live.stream` makes them and
:mod:`edgecnn.live.frame_outputs` writes them (no import cycle between the two).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from edgecnn.runtime.prediction import Prediction


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
