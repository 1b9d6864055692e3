"""This machine's limit for the classify pipeline, derived from its stages, and the one-line
verdict naming the stage that bounds the throughput (``bound by JPEG decoding ...``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgecnn.classify.input_discovery import Item

__all__ = ["DISTURBED_SHARE", "IMPOSSIBLE_FRACTION", "machine_limit", "verdict"]


def machine_limit(
    one_core_ms: dict[str, dict[str, float]], inference_ms: float | None, cores: int
) -> dict[str, Any]:
    """This machine's pipeline limit: every core busy, decoding spread over all of them and
    inference (already parallel) in series: ``1 / ((decode + preprocess) / cores + inference)``.
    Also each stage's share of that CPU time per image."""
    means = {k: v.get("mean", 0.0) for k, v in one_core_ms.items()}
    if inference_ms is None or not one_core_ms["decode"].get("count"):
        return {}
    shares = {
        "decode": means["decode"] / cores,
        "preprocess": means["preprocess"] / cores,
        "inference": inference_ms,
        "postprocess": means["postprocess"] / cores,
    }
    per_image = shares["decode"] + shares["preprocess"] + shares["inference"]
    return {
        "cores": cores,
        "limit_images_per_second": 1e3 / per_image if per_image > 0 else None,
        "cpu_share": {k: v / sum(shares.values()) for k, v in shares.items()},
    }


#: A pipeline measured above this fraction of its limit means the stage timings were disturbed.
IMPOSSIBLE_FRACTION = 1.1
#: Other processes using at least this share of the CPU make a low fraction unexplainable.
DISTURBED_SHARE = 0.25


_STAGE_WORDS = {
    "decode": "image decoding",
    "preprocess": "preprocessing (crop + resize)",
    "inference": "model inference",
    "postprocess": "postprocessing",
}


def verdict(row: dict[str, Any], items: Sequence[Item] = ()) -> str:
    """One line naming the stage that bounds the throughput, and how close to the limit."""
    share = row.get("cpu_share")
    if not share:
        return "incomplete: the model-only run for this configuration was interrupted"
    stage = max(share, key=share.get)
    words = _STAGE_WORDS[stage]
    if stage == "decode" and items and all(_is_jpeg(i.path) for i in items[:20]):
        words = "JPEG decoding"
    text = f"bound by {words} ({share[stage]:.0%} of the CPU time per image)"
    fraction = row.get("fraction_of_limit")
    if fraction is None:
        return text
    if fraction > IMPOSSIBLE_FRACTION:
        # Faster than the limit computed from its own stages: the stage timings (one core) were
        # slowed by something else, so the limit is wrong and no advice follows from it.
        return text + (
            f"; pipeline at {fraction:.0%} of the limit its stage timings give, which is "
            f"impossible: the measurement was disturbed{_others(row)}; measure on a quiet machine"
        )
    text += f"; pipeline at {fraction:.0%} of this machine's limit"
    others = max(row.get("others_cpu_share") or 0.0, row.get("one_core_others_cpu_share") or 0.0)
    if fraction < 0.8 and others >= DISTURBED_SHARE:
        text += f"; the measurement was disturbed{_others(row)}: measure on a quiet machine"
    elif fraction < 0.8:
        text += " (stages do not overlap well: try other --threads / batch sizes)"
    return text


def _others(row: dict[str, Any]) -> str:
    """`` (other processes used up to N% of the CPU)`` when that was measured, else nothing."""
    shares = [row.get(k) for k in ("others_cpu_share", "one_core_others_cpu_share")]
    known = [s for s in shares if s is not None]
    if not known:
        return ""
    return f" (other processes used up to {max(known):.0%} of the CPU)"


def _is_jpeg(path: str | None) -> bool:
    return bool(path) and str(path).lower().endswith((".jpg", ".jpeg"))
