"""The export report: what was written and how it behaves on this machine.

``OUT.report.json`` and a short terminal table: precision, file size, opset, parity numbers,
accuracy, and median single-image and batch latency measured with onnxruntime on this CPU
(intra-op threads = all cores). Latency here is a sanity figure for the export; ``edgecnn bench``
is the place for careful measurements.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import ExportError
from edgecnn.runtime.engines.base import PRECISIONS
from edgecnn.spec import InputSpec
from edgecnn.tools.latency_stats import latency_stats

BATCH = 32


def _median_ms(fn: Any, budget_s: float, max_runs: int) -> float:
    fn()  # warm-up (allocations, kernel selection)
    fn()
    samples_ms: list[float] = []
    start = time.perf_counter()
    while len(samples_ms) < max_runs and (
        len(samples_ms) < 5 or time.perf_counter() - start < budget_s
    ):
        t0 = time.perf_counter()
        fn()
        samples_ms.append((time.perf_counter() - t0) * 1e3)
    return latency_stats(samples_ms)["p50"]


def measure_latency(sess: Any, spec: InputSpec, budget_s: float = 1.0) -> dict[str, float]:
    """Median ms for one image and for a batch of 32 (plus ms per image in the batch)."""
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, *spec.shape), dtype=np.uint8)
    many = rng.integers(0, 256, (BATCH, *spec.shape), dtype=np.uint8)
    single = _median_ms(lambda: sess.run(None, {"image": one}), budget_s, 200)
    batch = _median_ms(lambda: sess.run(None, {"image": many}), budget_s, 50)
    return {
        "single_ms": round(single, 3),
        "batch_size": BATCH,
        "batch_ms": round(batch, 3),
        "batch_ms_per_image": round(batch / BATCH, 3),
    }


def check_engine_precision(precision: str | None) -> None:
    """``bf16`` / ``f16`` (or None) with OpenVINO importable; ExportError or
    MissingDependencyError (naming the extra) otherwise."""
    if precision is None:
        return
    reduced = [p for p in PRECISIONS if p != "f32"]
    if precision not in reduced:
        raise ExportError(f"`engine_precision` must be {' or '.join(reduced)}, not {precision!r}")
    from edgecnn.runtime.engines.openvino_engine import import_openvino

    import_openvino()


def engine_agreement(
    model: Path,
    precision: str,
    images: np.ndarray,
    truth: Sequence[str | None],
    labels: Sequence[str],
) -> dict[str, Any]:
    """OpenVINO at ``precision`` against the written model on onnxruntime (f32), on the
    verification images (:func:`edgecnn.tools.engine_precision.measure`)."""
    from edgecnn.tools import engine_precision

    index = {label: i for i, label in enumerate(labels)}
    classes = [index.get(t) if t is not None else None for t in truth]
    return engine_precision.measure(model, precision, [(images, classes)]).to_dict()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def format_table(report: dict[str, Any]) -> str:
    """A few aligned lines for the terminal (the JSON report has everything)."""
    rows: list[tuple[str, str]] = [
        ("file", f"{report['output']} ({report['size_bytes'] / 1e6:.2f} MB)"),
        ("precision", f"{report['precision']}  opset {report['opset']}"),
        (
            "labels",
            f"{len(report['labels'])}: {', '.join(report['labels'][:8])}"
            + (" ..." if len(report["labels"]) > 8 else ""),
        ),
    ]
    v = report["verification"]
    rows.append(("verified on", f"{v['images']} images ({v['source']})"))
    fp = report.get("fp32_parity")
    if fp is not None:
        rows.append(
            (
                "fp32 vs Keras",
                f"top-1 agree {_pct(fp['top1_agreement'])}, max |diff| {fp['max_abs_diff']:.2e}",
            )
        )
    rows.append(
        (
            f"{report['precision']} vs Keras",
            f"top-1 agree {_pct(v['top1_agreement'])}, max |diff| {v['max_abs_diff']:.2e}",
        )
    )
    if v["accuracy"] is not None:
        rows.append(
            (
                "accuracy",
                f"{_pct(v['accuracy'])} (Keras {_pct(v['accuracy_keras'])}, "
                f"{v['labelled']} labelled images)",
            )
        )
    lat = report.get("latency")
    ref = report.get("fp32_latency")
    if lat:
        line = f"{lat['single_ms']:.2f} ms/image, batch {lat['batch_size']}: " + (
            f"{lat['batch_ms_per_image']:.2f} ms/image"
        )
        if ref:
            line += f"  (fp32: {ref['single_ms']:.2f} / {ref['batch_ms_per_image']:.2f})"
        rows.append(("latency (CPU)", line))
    if ref and report.get("fp32_size_bytes"):
        rows.append(("fp32 size", f"{report['fp32_size_bytes'] / 1e6:.2f} MB"))
    agreement = report.get("engine_precision")
    if agreement:
        from edgecnn.tools.engine_precision import PrecisionAgreement

        line = PrecisionAgreement(**agreement).line()
        rows.append(("engine precision", line.removeprefix("engine precision ")))
    for warning in report.get("warnings", []):
        rows.append(("warning", warning))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {val}" for k, val in rows)
