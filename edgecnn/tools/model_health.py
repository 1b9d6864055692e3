"""Is the model alive and better than guessing? Checks shared by training and export.

Two failures pass every parity gate unnoticed: a model whose output does not depend on its input
(an untrained backbone, a collapsed run: every image gets the same probabilities) and a model
whose accuracy is barely above chance (a run stopped after a few epochs). The ONNX graph agrees
perfectly with Keras on both, and int8 loses nothing; these checks say what the gates cannot.
TensorFlow-free: the inputs are probability rows and integer targets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Largest per-class standard deviation of the probabilities across images below which the
#: outputs count as not depending on the input (a trained model varies by 1e-2 and more).
MIN_OUTPUT_SPREAD = 1e-4
#: Accuracy must cover this fraction of the way from chance to 100% to count as "learned".
LEARNED_FRACTION = 0.2


def output_problem(probabilities: np.ndarray) -> str | None:
    """Why the outputs look dead (constant, uniform, or near-zero variance), else None.

    ``probabilities`` has one row per image. Needs at least two images to judge variance.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or len(probs) < 2 or probs.shape[1] < 2:
        return None
    classes = probs.shape[1]
    if not np.all(np.isfinite(probs)):
        bad = int((~np.isfinite(probs)).any(axis=1).sum())
        return f"the outputs hold NaN or infinity for {bad} of {len(probs)} images"
    row_range = float((probs.max(axis=1) - probs.min(axis=1)).max())
    if row_range < 1e-6:
        return (
            f"every class gets probability {1 / classes:.3g} for all {len(probs)} images "
            "(all-equal outputs: the model cannot tell the classes apart)"
        )
    spread = float(probs.std(axis=0).max())
    if spread == 0.0:
        return (
            f"the outputs are identical for all {len(probs)} images "
            "(they do not depend on the input)"
        )
    if spread < MIN_OUTPUT_SPREAD:
        return (
            f"the outputs barely change across {len(probs)} images (largest per-class standard "
            f"deviation {spread:.2g} < {MIN_OUTPUT_SPREAD:g}): they do not depend on the input"
        )
    return None


def chance_level(targets: Sequence[int] | np.ndarray, num_classes: int) -> float:
    """Accuracy of the best input-blind guess: the most frequent class (>= 1/num_classes)."""
    y = np.asarray(targets, dtype=np.int64)
    if len(y) == 0:
        return 1.0 / max(num_classes, 1)
    counts = np.bincount(y[y >= 0], minlength=num_classes)
    return max(float(counts.max()) / len(y), 1.0 / max(num_classes, 1))


def near_chance(accuracy: float, chance: float) -> bool:
    """True when ``accuracy`` covers less than :data:`LEARNED_FRACTION` of chance -> 100%."""
    return accuracy < chance + LEARNED_FRACTION * (1.0 - chance)


def accuracy_problem(
    accuracy: float | None, targets: Sequence[int] | np.ndarray, num_classes: int
) -> str | None:
    """A warning line when a measured accuracy is near chance, else None."""
    if accuracy is None or len(targets) == 0:
        return None
    chance = chance_level(targets, num_classes)
    if not near_chance(accuracy, chance):
        return None
    return (
        f"accuracy {accuracy:.1%} on {len(targets)} labelled images is near chance "
        f"({chance:.1%} for {num_classes} classes): the model has barely learned; "
        "train longer or check the data"
    )
