"""Verification: the ONNX graph against the Keras model (and a quantized graph against fp32).

Numbers, computed on the same uint8 images for both: maximum absolute probability difference,
top-1 agreement and, for images with a class folder, the accuracy of each. The gates are the
promise made to users: an fp32 export agrees with Keras on >= 99.9% of images, and a quantized
export loses at most ``max_accuracy_drop`` points of accuracy (without labels: at most that many
points of top-1 agreement, an upper bound on the accuracy it can lose).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgecnn.errors import ExportError, ModelError

FP32_MIN_AGREEMENT = 0.999
#: Input pixels per verification / calibration batch: 4 images at 256x256, 28 at 96x96, at most
#: 64. Activations grow with the input size: a fixed batch of 64 big images cost GBs, and
#: onnxruntime's arena keeps its largest batch's worth for the session's life.
BATCH_PIXELS = 2**18


def batch_size_for(height: int, width: int, pixels: int = BATCH_PIXELS) -> int:
    """Images per batch so one batch holds about ``pixels`` input pixels (1..64)."""
    return max(1, min(64, pixels // max(1, height * width)))


def session(model_bytes: bytes, threads: int | None = None) -> Any:
    """A CPU session on serialized model bytes (nothing touches the disk), opened exactly as
    the runtime opens models (:func:`edgecnn.runtime.providers.create_session`)."""
    from edgecnn.runtime.providers import create_session

    try:
        return create_session(model_bytes, "cpu", threads)[0]
    except ModelError as exc:
        raise ExportError(f"onnxruntime cannot load the exported graph: {exc}") from exc


def onnx_probabilities(sess: Any, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """Run the ``image`` -> ``probabilities`` graph over uint8 NHWC images in batches."""
    batch_size = batch_size or batch_size_for(*images.shape[1:3])
    chunks = [
        sess.run(["probabilities"], {"image": images[i : i + batch_size]})[0]
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(chunks).astype(np.float64) if chunks else np.zeros((0, 0))


def compare(
    reference: np.ndarray,
    candidate: np.ndarray,
    truth: Sequence[str | None],
    labels: Sequence[str],
) -> dict[str, Any]:
    """Parity numbers of ``candidate`` against ``reference`` probabilities (rows = images)."""
    if reference.shape != candidate.shape:
        raise ExportError(
            f"the ONNX output has shape {candidate.shape}, Keras {reference.shape}; not comparable"
        )
    ref_top, cand_top = reference.argmax(axis=1), candidate.argmax(axis=1)
    index = {label: i for i, label in enumerate(labels)}
    known = np.array([t is not None and t in index for t in truth], dtype=bool)
    y = np.array([index.get(t, -1) if t is not None else -1 for t in truth])
    out: dict[str, Any] = {
        "images": len(reference),
        "max_abs_diff": float(np.abs(reference - candidate).max()) if len(reference) else 0.0,
        "top1_agreement": float((ref_top == cand_top).mean()) if len(reference) else 1.0,
        "row_sum_error": float(np.abs(candidate.sum(axis=1) - 1).max()) if len(reference) else 0.0,
        "labelled": int(known.sum()),
        "accuracy_reference": None,
        "accuracy": None,
    }
    if known.any():
        out["accuracy_reference"] = float((ref_top[known] == y[known]).mean())
        out["accuracy"] = float((cand_top[known] == y[known]).mean())
    return out


def accuracy_drop(parity: dict[str, Any]) -> float:
    """Points of accuracy lost against the reference (or top-1 disagreement without labels)."""
    if parity["accuracy"] is not None:
        return 100.0 * (parity["accuracy_reference"] - parity["accuracy"])
    return 100.0 * (1.0 - parity["top1_agreement"])


def check_fp32(parity: dict[str, Any]) -> None:
    """Refuse an fp32 graph that disagrees with Keras on more than 0.1% of the images."""
    if parity["top1_agreement"] < FP32_MIN_AGREEMENT:
        raise ExportError(
            f"the fp32 ONNX graph agrees with Keras on only {parity['top1_agreement']:.2%} of "
            f"{parity['images']} images (max |diff| {parity['max_abs_diff']:.3g}; needs "
            f">= {FP32_MIN_AGREEMENT:.1%}); the conversion is wrong, nothing was written"
        )


def check_quantized(
    parity: dict[str, Any], precision: str, max_drop: float, force: bool
) -> str | None:
    """Refuse (or, with ``force``, warn about) a quantized graph that loses too much accuracy.

    Returns a warning line when the gate failed but ``force`` is set, else None.
    """
    drop = accuracy_drop(parity)
    if drop <= max_drop:
        return None
    if parity["accuracy"] is not None:
        numbers = (
            f"accuracy {parity['accuracy']:.2%} vs Keras {parity['accuracy_reference']:.2%} "
            f"on {parity['labelled']} labelled images"
        )
    else:
        numbers = f"top-1 agreement with Keras {parity['top1_agreement']:.2%} (no labels)"
    message = (
        f"the {precision} model loses {drop:.2f} points ({numbers}), more than "
        f"`max_accuracy_drop` {max_drop:g}"
    )
    if force:
        return message + "; written anyway because of `force`"
    hint = (
        "try more or more representative `calibration` images, `calibration_method` entropy "
        "or percentile, `no_reduce_range`, or `force`"
        if precision == "int8-static"
        else "try `precision` int8 (static, calibrated) or fp32, or `force`"
    )
    raise ExportError(f"{message}; nothing was written. To fix: {hint}")
