"""Train / validation / test splits: the one ratio check, and the reproducible split.

Splits are stratified per class and seeded per class name, so adding a class never reshuffles
the others, and the same files + the same seed always give the same split.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgecnn.data.datasets import SPLITS, Dataset
from edgecnn.errors import DatasetError


def split_indices(n: int, ratios: Sequence[float], seed: int, key: str = "") -> list[np.ndarray]:
    """Shuffle ``range(n)`` with a generator seeded by (seed, key) and cut it by ratios.

    Counts use largest remainders; a split with a positive ratio gets at least one item when
    the first split can spare one, so a small class still appears in validation.
    """
    ratios = check_ratios(ratios)
    exact = np.array(ratios) * n
    sizes = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - sizes), kind="stable")[: n - sizes.sum()]:
        sizes[i] += 1
    for i in range(1, len(sizes)):
        if ratios[i] > 0 and sizes[i] == 0 and sizes[0] > 1:
            sizes[i] += 1
            sizes[0] -= 1
    rng = np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])
    order = rng.permutation(n)
    return np.split(order, np.cumsum(sizes)[:-1])


def check_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
    """The one ratio check: 1-3 train / validation[ / test] fractions, each in 0..1 (NaN is not),
    adding up to 1, with a positive train share. Used by the seeded split, ``dataset split``,
    the shapes generator and ``train``'s ``val_split`` / ``test_split``."""
    values = tuple(float(r) for r in ratios)
    if not 1 <= len(values) <= 3:
        raise DatasetError(f"expected 2 or 3 ratios (train,validation[,test]), got {len(values)}")
    if not all(0 <= r <= 1 for r in values):  # written so that NaN fails too
        raise DatasetError(f"ratios {','.join(f'{r:g}' for r in values)} must lie in 0..1")
    if not math.isclose(sum(values), 1.0, rel_tol=0, abs_tol=1e-6):
        raise DatasetError(
            f"ratios {','.join(f'{r:g}' for r in values)} add up to {sum(values):g}, not 1"
        )
    if values[0] <= 0:
        raise DatasetError("the train ratio must be positive")
    return values


def parse_ratios(text: str) -> tuple[float, ...]:
    """Parse ``"0.7,0.15,0.15"`` (or percentages ``"70,15,15"``) into checked ratios."""
    try:
        values = [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise DatasetError(f"ratios {text!r} are not comma-separated numbers") from None
    if values and sum(values) > 1.5:  # percentages
        values = [v / 100 for v in values]
    return check_ratios(values)


def resolve_splits(
    dataset: Dataset, val_split: float = 0.2, test_split: float = 0.0, seed: int = 42
) -> dict[str, list[tuple[Path, int]]]:
    """(path, class index) lists for train / validation / test.

    A split layout uses its folders, carving validation out of train by ``val_split`` only if
    there is no validation folder. A flat layout is cut by ``val_split`` and ``test_split``.
    """
    try:
        check_ratios((1 - val_split - test_split, val_split, test_split))
    except DatasetError:
        raise DatasetError(
            f"`val_split` {val_split:g} and `test_split` {test_split:g} must be in 0..1 and "
            "leave images for training"
        ) from None
    out: dict[str, list[tuple[Path, int]]] = {s: [] for s in SPLITS}
    if dataset.layout == "split":
        carve = "validation" not in dataset.files
        for index, label in enumerate(dataset.labels):
            train = dataset.files["train"][label]
            if carve and val_split > 0:
                parts = split_indices(len(train), (1 - val_split, val_split), seed, label)
                out["train"] += [(train[i], index) for i in sorted(parts[0])]
                out["validation"] += [(train[i], index) for i in sorted(parts[1])]
            else:
                out["train"] += [(p, index) for p in train]
            for split in ("validation", "test"):
                out[split] += [(p, index) for p in dataset.files.get(split, {}).get(label, [])]
    else:
        ratios = (1 - val_split - test_split, val_split, test_split)
        for index, label in enumerate(dataset.labels):
            paths = dataset.files["all"][label]
            for split, part in zip(
                SPLITS, split_indices(len(paths), ratios, seed, label), strict=True
            ):
                out[split] += [(paths[i], index) for i in sorted(part)]
    return out
