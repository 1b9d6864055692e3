"""Draw a classification on a frame: top-k labels with confidence bars, FPS and latencies.

Sizes scale with the frame (a 4K frame gets the same look as a 640x480 one), the panels are
translucent so the scene stays visible, and only the panel regions are blended (cheap). The
original frame is never modified: :func:`annotate` returns a copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

#: BGR colours; the bar colour is distinctive on purpose (tests look for it in screenshots).
BAR = (0, 200, 255)  # amber: the top-1 confidence bar
BAR_OTHER = (200, 160, 60)  # muted blue: the other top-k bars
TEXT = (255, 255, 255)
DIM = (190, 190, 190)
PANEL = (24, 24, 24)
UNCERTAIN = (0, 0, 230)

_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Annotation:
    """What to draw on one frame (everything optional but ``top``)."""

    top: Sequence[tuple[str, float]]
    label: str | None = None  #: the stable (smoothed) label, when smoothing is on
    smoothed: bool = False
    fps: float | None = None
    inference_ms: float | None = None
    latency_ms: float | None = None
    dropped: int = 0
    error: str | None = None


_UNICODE = int(cv2.__version__.split(".")[0]) >= 5  # OpenCV 5 draws Unicode with putText


def _ascii(text: str) -> str:
    """OpenCV 4's Hershey fonts draw ASCII only: other characters become '?', not garbage
    (and undecodable bytes of a file name never reach OpenCV, whose C++ API crashes on them)."""
    encoding = "utf-8" if _UNICODE else "ascii"
    return text.encode(encoding, "replace").decode(encoding)


def _panel(image: np.ndarray, x0: int, y0: int, x1: int, y1: int, alpha: float = 0.6) -> None:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return
    roi = image[y0:y1, x0:x1]
    shade = np.empty_like(roi)
    shade[:] = PANEL
    cv2.addWeighted(shade, alpha, roi, 1 - alpha, 0, dst=roi)


def annotate(frame: np.ndarray, note: Annotation) -> np.ndarray:
    """A copy of the BGR ``frame`` with the labels, bars and timing line drawn on it."""
    image = np.array(frame, dtype=np.uint8, copy=True)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = image.shape[:2]
    s = max(min(h, w) / 480.0, 0.35)
    font = 0.6 * s
    thick = max(1, round(1.5 * s))
    pad = max(3, round(8 * s))
    line = max(10, round(26 * s))
    bar_w = max(20, round(min(w * 0.35, 220 * s)))
    bar_h = max(4, round(10 * s))

    # rows: (text, score or None, warning colour); the first row is the stable label when smoothing
    rows: list[tuple[str, float | None, bool]] = []
    if note.error:
        rows.append((f"error: {note.error}"[:60], None, True))
    else:
        if note.smoothed:
            rows.append((note.label or "(uncertain)", None, note.label is None))
        rows.extend((label, score, False) for label, score in note.top)
    first_bar = 1 if note.smoothed else 0

    def width(text: str) -> int:
        return cv2.getTextSize(_ascii(text), _FONT, font, thick)[0][0]

    label_w = max([width(text) for text, score, _ in rows if score is not None] or [0])
    score_w = width("0.00")
    bars_w = label_w + score_w + bar_w + pad * 3
    panel_w = pad + max([bars_w] + [width(text) + pad for text, score, _ in rows if score is None])
    big = 1.4  # the stable label, when smoothing, is drawn larger
    heights = [round(line * big) if score is None else line for _, score, _ in rows]
    panel_w = max(
        panel_w, pad * 2 + round(big * max([width(t) for t, sc, _ in rows if sc is None] or [0]))
    )
    _panel(image, 0, 0, panel_w, pad * 2 + sum(heights))
    y = pad
    for i, (text, score, warn) in enumerate(rows):
        base = y + heights[i] - round(heights[i] * 0.3)
        lead = i == first_bar or score is None
        color = UNCERTAIN if warn else TEXT if lead else DIM
        size, weight = (font, thick) if score is not None else (font * big, thick + 1)
        cv2.putText(image, _ascii(text), (pad, base), _FONT, size, color, weight, cv2.LINE_AA)
        if score is not None:
            x_score = pad * 2 + label_w
            cv2.putText(
                image, f"{score:.2f}", (x_score, base), _FONT, font, color, thick, cv2.LINE_AA
            )
            x0 = x_score + score_w + pad
            yb = base - bar_h - max(1, round(2 * s))
            cv2.rectangle(image, (x0, yb), (x0 + bar_w, yb + bar_h), DIM, 1)
            filled = round(bar_w * min(max(score, 0.0), 1.0))
            if filled:
                fill = BAR if i == first_bar else BAR_OTHER
                cv2.rectangle(image, (x0, yb), (x0 + filled, yb + bar_h), fill, -1)
        y += heights[i]

    parts = []
    if note.fps is not None:
        parts.append(f"{note.fps:.1f} FPS")
    if note.inference_ms is not None:
        parts.append(f"infer {note.inference_ms:.1f} ms")
    if note.latency_ms is not None:
        parts.append(f"e2e {note.latency_ms:.1f} ms")
    if note.dropped:
        parts.append(f"dropped {note.dropped}")
    if parts:
        status = "  ".join(parts)
        small = font * 0.8
        (tw, th), _ = cv2.getTextSize(status, _FONT, small, thick)
        _panel(image, 0, h - th - pad * 2, tw + pad * 2, h)
        cv2.putText(image, status, (pad, h - pad), _FONT, small, TEXT, thick, cv2.LINE_AA)
    return image
