"""Calibration and verification images: which split to read, balanced sampling, loading.

Folders are found by :func:`edgecnn.data.datasets.find_images` (the folder rule shared with
``edgecnn eval``): when DIR holds the split sub-folder a step prefers (calibration: ``train``;
verification: ``validation`` / ``val`` / ``valid``, then ``test``), that sub-folder is read.
Every image goes through :func:`edgecnn.preprocess.load_image`, the function the runtime uses.
TensorFlow-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from edgecnn.data.datasets import Labelled
from edgecnn.errors import ImageError
from edgecnn.preprocess import load_image
from edgecnn.spec import InputSpec
from edgecnn.tools.machine import available_cores

CALIBRATION_SPLITS = ("train",)
VERIFY_SPLITS = ("validation", "val", "valid", "test")


def sample_evenly(items: Sequence[Labelled], count: int) -> list[Labelled]:
    """Up to ``count`` items, balanced over labels, evenly spaced within each (deterministic)."""
    if count <= 0 or len(items) <= count:
        return list(items)
    groups: dict[str | None, list[Labelled]] = {}
    for item in items:
        groups.setdefault(item[1], []).append(item)
    quota = {key: 0 for key in groups}
    left = count
    while left > 0:  # round-robin so small classes give all they have
        progressed = False
        for key, members in groups.items():
            if left and quota[key] < len(members):
                quota[key] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    out = []
    for key, members in groups.items():
        n = quota[key]
        idx = np.linspace(0, len(members) - 1, n).round().astype(int) if n else []
        out += [members[i] for i in idx]
    return out


def load_images(
    items: Sequence[Labelled], spec: InputSpec, workers: int | None = None
) -> tuple[np.ndarray, list[str | None], list[tuple[str, str]]]:
    """Decode + fit + resize with :func:`load_image`; returns (NHWC uint8, labels, failures).

    Failures are ``(path, reason)`` pairs: a broken file is reported, never silently dropped.
    """
    workers = workers or min(4, available_cores())

    def one(item: Labelled) -> np.ndarray | ImageError:
        try:
            return load_image(item[0], spec)
        except ImageError as exc:
            return exc

    arrays, labels, failures = [], [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for item, result in zip(items, pool.map(one, items), strict=True):
            if isinstance(result, ImageError):
                failures.append((str(item[0]), result.reason))
            else:
                arrays.append(result)
                labels.append(item[1])
    batch = np.stack(arrays) if arrays else np.zeros((0, *spec.shape), np.uint8)
    return batch, labels, failures
