"""Image folders for calibration, verification and evaluation (TensorFlow-free).

Folder rule (the same for ``--calibration``, ``--verify`` and ``edgecnn eval``): when DIR holds a
split sub-folder the command prefers (calibration: ``train``; verification: ``validation`` /
``val`` / ``valid``, then ``test``; evaluation: ``test``), that sub-folder is used. Its immediate
sub-folders are classes (``<class>/**/*.jpg``); image files directly inside it are unlabelled.
Every image goes through :func:`edgecnn.preprocess.load_image`, the function the runtime uses.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgecnn.errors import DatasetError, ImageError
from edgecnn.preprocess import load_image
from edgecnn.spec import InputSpec

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)
CALIBRATION_SPLITS = ("train",)
VERIFY_SPLITS = ("validation", "val", "valid", "test")
EVAL_SPLITS = ("test",)

Labelled = tuple[Path, str | None]


def _visible(name: str) -> bool:
    return not name.startswith(".") and name not in ("__MACOSX", "Thumbs.db", "desktop.ini")


def _walk(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if _visible(d))
        found += [Path(dirpath) / f for f in sorted(filenames) if _visible(f)]
    return found


def pick_split(root: Path, prefer: Sequence[str]) -> Path:
    """``root/<split>`` for the first preferred split that exists as a folder, else ``root``."""
    for name in prefer:
        if (root / name).is_dir():
            return root / name
    return root


def list_images(
    folder: str | Path, prefer: Sequence[str] = (), labels: Sequence[str] | None = None
) -> list[Labelled]:
    """(path, label or None) for every image file under the folder, following the folder rule.

    Labels are the class sub-folder names; with ``labels`` given, folders not among them count as
    unlabelled. Raises DatasetError for a missing folder or one without image files.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(
            f"{root}: image folder does not exist" if not root.exists() else f"{root}: not a folder"
        )
    base = pick_split(root, prefer)
    known = set(labels) if labels is not None else None
    out: list[Labelled] = []
    others = 0
    for path in _walk(base):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            others += 1
            continue
        rel = path.relative_to(base).parts
        label = rel[0] if len(rel) > 1 else None
        if label is not None and known is not None and label not in known:
            label = None
        out.append((path, label))
    if not out:
        extra = f" ({others} other file(s))" if others else ""
        raise DatasetError(
            f"{base}: no image files{extra}; expected {', '.join(sorted(IMAGE_SUFFIXES))}"
        )
    return out


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
    workers = workers or min(4, os.cpu_count() or 1)

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
