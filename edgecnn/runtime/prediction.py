"""Prediction: what classifying one input produced (labels and scores, or its error) and timings."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Stage names of :attr:`Prediction.timings`, in pipeline order (milliseconds).
STAGES = ("decode", "preprocess", "inference", "postprocess")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Rows of logits -> rows of probabilities (stable: the row maximum is removed first; float
    input keeps its precision)."""
    x = np.asarray(logits)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Prediction:
    """The result for one input: top-k ``(label, score)`` pairs, or the error that stopped it.

    ``timings`` holds milliseconds per stage (see :data:`STAGES`); inference is this image's
    share of its batch's run time.
    """

    source: str
    top: tuple[tuple[str, float], ...] = ()
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the input was classified."""
        return self.error is None

    @property
    def label(self) -> str | None:
        """Top-1 label (None for an error)."""
        return self.top[0][0] if self.top else None

    @property
    def score(self) -> float | None:
        """Top-1 probability (None for an error)."""
        return self.top[0][1] if self.top else None

    def __str__(self) -> str:
        if not self.ok:
            return f"{self.source}: error: {self.error}"
        return f"{self.source}: {self.label} ({self.score:.3f})"
