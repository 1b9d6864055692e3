"""Training data: decode every image once through the one preprocessing function into a uint8
cache at the model input size, then feed batches (shuffled, augmented for training) to Keras.

The cache lives in memory, or in a disk memmap when it would exceed :data:`MEMORY_LIMIT`, so
later epochs never decode again. Decoding runs in a thread pool (OpenCV releases the GIL).
Unreadable files are collected with their reason, never raised mid-epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import ImageError
from edgecnn.preprocess import load_image
from edgecnn.spec import InputSpec
from edgecnn.tools.machine import available_cores

#: Caches larger than this many bytes go to a memmap file instead of RAM.
MEMORY_LIMIT = 2 * 1024**3

AUGMENTATIONS = ("flip", "vflip", "rotation", "brightness", "contrast", "zoom", "translation")


@dataclass
class Cache:
    """Preprocessed images of one split: uint8 ``NxHxWxC``, class indices and their files."""

    images: np.ndarray
    targets: np.ndarray
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def __len__(self) -> int:
        return len(self.targets)


def build_cache(
    items: Sequence[tuple[Path, int]],
    spec: InputSpec,
    *,
    workers: int | None = None,
    memmap_path: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Cache:
    """Run :func:`edgecnn.preprocess.load_image` over ``items`` into one uint8 array."""
    n = len(items)
    nbytes = n * spec.height * spec.width * spec.channels
    if memmap_path is not None and nbytes > MEMORY_LIMIT:
        images = np.lib.format.open_memmap(memmap_path, "w+", np.uint8, (n, *spec.shape))
    else:
        images = np.empty((n, *spec.shape), np.uint8)
    ok = np.zeros(n, bool)
    skipped: list[tuple[str, str]] = []

    def work(i: int) -> str | None:
        try:
            images[i] = load_image(items[i][0], spec)
        except ImageError as exc:
            return exc.reason
        except Exception as exc:  # never let one strange file stop training
            return f"{type(exc).__name__}: {exc}"
        ok[i] = True
        return None

    with ThreadPoolExecutor(max_workers=workers or available_cores()) as pool:
        for done, (i, reason) in enumerate(enumerate(pool.map(work, range(n))), start=1):
            if reason is not None:
                skipped.append((str(items[i][0]), reason))
            if progress is not None:
                progress(done, n)
    keep = np.flatnonzero(ok)
    if len(keep) < n:
        images = images[keep] if not isinstance(images, np.memmap) else _compact(images, keep)
    return Cache(
        images=images,
        targets=np.array([items[i][1] for i in keep], np.int32),
        paths=[str(items[i][0]) for i in keep],
        skipped=skipped,
    )


def _compact(images: np.memmap, keep: np.ndarray) -> np.ndarray:
    """Move kept rows to the front of a memmap in place and return that view."""
    for dst, src in enumerate(keep):
        if dst != src:
            images[dst] = images[src]
    return images[: len(keep)]


def parse_augment(text: str | None, default: dict[str, float]) -> dict[str, float]:
    """``"default"``, ``"none"`` or ``"flip,rotation=0.2,zoom"`` -> {name: strength}.

    A name without a value takes the architecture default, or a moderate one.
    """
    if text is None or text.strip().lower() in ("", "default"):
        return dict(default)
    if text.strip().lower() in ("none", "off", "0", "false"):
        return {}
    moderate = {
        "flip": 1,
        "vflip": 1,
        "rotation": 0.1,
        "brightness": 0.2,
        "contrast": 0.2,
        "zoom": 0.1,
        "translation": 0.1,
    }
    out: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.strip().partition("=")
        name = name.strip().lower()
        if not name:
            continue
        if name not in AUGMENTATIONS:
            raise ValueError(
                f"unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}, "
                "'default' or 'none'"
            )
        try:
            strength = float(value) if value else default.get(name, moderate[name])
        except ValueError:
            raise ValueError(f"augmentation {name}={value!r} is not a number") from None
        if not 0 <= strength <= 1:
            raise ValueError(f"augmentation {name}={strength:g} must lie in 0..1")
        out[name] = strength
    return out


def make_augmenter(augment: dict[str, float], seed: int) -> Callable[[Any], Any] | None:
    """A TensorFlow function augmenting a float32 batch in 0..255 (training only).

    Flips, rotation, zoom and translation are folded into ONE projective transform per image
    (a single resampling: faster than chaining Keras' Random* layers, and sharper), then
    brightness and contrast; values are clipped back to 0..255.
    """
    if not any(augment.values()):
        return None
    import tensorflow as tf

    flip_h, flip_v = bool(augment.get("flip")), bool(augment.get("vflip"))
    rotation = float(augment.get("rotation", 0.0)) * 2 * math.pi  # fraction of a full turn
    zoom, shift = float(augment.get("zoom", 0.0)), float(augment.get("translation", 0.0))
    brightness, contrast = (
        float(augment.get("brightness", 0.0)),
        float(augment.get("contrast", 0.0)),
    )
    geometric = flip_h or flip_v or rotation or zoom or shift

    def uniform(n: Any, low: float, high: float, offset: int) -> Any:
        return tf.random.uniform([n], low, high, seed=seed + offset)

    def flip(n: Any, enabled: bool, offset: int) -> Any:
        if not enabled:
            return tf.ones([n])
        return tf.where(uniform(n, 0.0, 1.0, offset) < 0.5, -1.0, 1.0)

    def apply(images: Any) -> Any:
        n = tf.shape(images)[0]
        height = tf.cast(tf.shape(images)[1], tf.float32)
        width = tf.cast(tf.shape(images)[2], tf.float32)
        if geometric:
            angle = uniform(n, -rotation, rotation, 1)
            scale = uniform(n, 1.0 - zoom, 1.0 + zoom, 2)
            fx, fy = flip(n, flip_h, 3), flip(n, flip_v, 4)
            tx = uniform(n, -shift, shift, 5) * width
            ty = uniform(n, -shift, shift, 6) * height
            cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
            cx, cy = (width - 1) / 2, (height - 1) / 2
            a0, a1, b0, b1 = cos * fx, -sin * fy, sin * fx, cos * fy
            a2 = cx - a0 * cx - a1 * cy - tx
            b2 = cy - b0 * cx - b1 * cy - ty
            zeros = tf.zeros([n])
            matrix = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
            images = tf.raw_ops.ImageProjectiveTransformV3(
                images=images,
                transforms=matrix,
                output_shape=tf.shape(images)[1:3],
                fill_value=0.0,
                interpolation="BILINEAR",
                fill_mode="REFLECT",
            )
        if contrast:
            mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
            factor = tf.reshape(uniform(n, 1.0 - contrast, 1.0 + contrast, 7), [-1, 1, 1, 1])
            images = (images - mean) * factor + mean
        if brightness:
            images = (
                images + tf.reshape(uniform(n, -brightness, brightness, 8), [-1, 1, 1, 1]) * 255
            )
        return tf.clip_by_value(images, 0.0, 255.0)

    return apply


def make_dataset(
    cache: Cache,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    augmenter: Callable[[Any], Any] | None = None,
) -> Any:
    """A tf.data pipeline over the cache: index batches -> gather -> float32 (-> augment)."""
    import tensorflow as tf

    images, targets = cache.images, cache.targets
    shape = (None, *images.shape[1:])

    def gather(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = np.sort(index)  # sequential reads from a memmap
        return images[index].astype(np.float32), targets[index]

    ds = tf.data.Dataset.range(len(cache))
    if shuffle:
        ds = ds.shuffle(len(cache), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def load(index: Any) -> tuple[Any, Any]:
        x, y = tf.numpy_function(gather, [index], (tf.float32, tf.int32), stateful=False)
        x.set_shape(shape)
        y.set_shape((None,))
        return x, y

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if augmenter is not None:

        def augment(x: Any, y: Any) -> tuple[Any, Any]:
            return augmenter(x), y

        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
