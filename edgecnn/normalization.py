"""Pixel normalization of models from elsewhere: ``x = (uint8 * scale - mean) / std``.

One type and one parser for ``classify`` / ``live`` / ``bench`` (a foreign float-input ONNX
model: the runtime applies it), ``eval`` and ``export`` (baked into the exported graph). Models
trained by ``edgecnn train`` take 0..255 floats (their Rescaling layer is inside the model), so
the default is the identity. A model trained on 0..1 input needs ``scale`` ``1/255``;
ImageNet-style models add ``mean`` / ``std`` (one value or one per channel); ``1/127.5`` with
mean 1 gives -1..1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.errors import ModelError


@dataclass(frozen=True)
class Normalization:
    """Scale, then subtract mean, then divide by std (mean/std: one value or one per channel)."""

    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if not np.isfinite(self.scale) or self.scale == 0:
            raise ModelError(f"`scale` {self.scale} must be a finite, non-zero number")
        if any(s == 0 or not np.isfinite(s) for s in self.std):
            raise ModelError("`std` values must be finite and non-zero")

    @property
    def is_identity(self) -> bool:
        """True when the graph needs nothing but the uint8 -> float32 cast."""
        return self.scale == 1.0 and set(self.mean) == {0.0} and set(self.std) == {1.0}

    def check_channels(self, channels: int) -> None:
        """Refuse per-channel mean/std whose length is neither 1 nor the channel count."""
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise ModelError(
                    f"`{name}` has {len(values)} values; give 1 or {channels} (one per channel)"
                )

    def apply(self, images: np.ndarray) -> np.ndarray:
        """The same arithmetic in numpy (float32), for the Keras reference run."""
        x = images.astype(np.float32)
        if self.is_identity:
            return x
        x = x * np.float32(self.scale)
        x = x - np.asarray(self.mean, np.float32)
        return x / np.asarray(self.std, np.float32)

    def to_dict(self) -> dict[str, Any]:
        """For the metadata and the report."""
        return {"scale": self.scale, "mean": list(self.mean), "std": list(self.std)}


def parse_number(text: str) -> float:
    """A finite number, or a quotient such as ``1/255`` or ``1/127.5``."""
    try:
        if "/" in text:
            numerator, denominator = text.split("/", 1)
            value = float(numerator) / float(denominator)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        value = math.nan
    if not math.isfinite(value):
        raise ModelError(f"{text.strip()!r} is not a number (examples: 0.5, 1/255, 1/127.5)")
    return value


def parse_values(text: str | None, default: float) -> tuple[float, ...]:
    """Comma-separated numbers (``0.485,0.456,0.406``) or one number."""
    if text is None or not text.strip():
        return (default,)
    return tuple(parse_number(part) for part in text.split(","))


def parse_normalization(
    scale: str | None = None, mean: str | None = None, std: str | None = None
) -> Normalization:
    """Build from text (``"1/255"``, ``"0.485,0.456,0.406"``); missing parts are the identity."""
    return Normalization(
        scale=parse_number(scale) if scale else 1.0,
        mean=parse_values(mean, 0.0),
        std=parse_values(std, 1.0),
    )
