"""Latency statistics: the one place percentiles are computed (classify summary, live, bench)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: percentiles reported everywhere, as (key, q)
PERCENTILES = (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99))


def latency_stats(samples_ms: Sequence[float]) -> dict[str, float]:
    """count, min, mean, p50, p90, p95, p99, max of a list of milliseconds (linear
    interpolation between order statistics, as numpy's default). Empty input -> count 0."""
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        return {"count": 0}
    stats = {"count": int(values.size), "min": float(values.min()), "mean": float(values.mean())}
    for key, q in PERCENTILES:
        stats[key] = float(np.percentile(values, q))
    stats["max"] = float(values.max())
    return stats


class Tally:
    """Accumulates predictions of a run: ok / failed counts, per-stage latency, wall time."""

    def __init__(self, stages: Sequence[str]) -> None:
        self.stages = tuple(stages)
        self.ok = 0
        self.failed: list[tuple[str, str]] = []
        self.samples: dict[str, list[float]] = {stage: [] for stage in self.stages}

    def add(self, source: str, error: str | None, timings: dict[str, float]) -> None:
        """Count one result."""
        if error is None:
            self.ok += 1
        else:
            self.failed.append((source, error))
        for stage, value in timings.items():
            if stage in self.samples:
                self.samples[stage].append(value)

    @property
    def total(self) -> int:
        """Results counted so far."""
        return self.ok + len(self.failed)

    def summary(self, seconds: float) -> dict[str, object]:
        """JSON-ready totals: counts, wall time, images/s, latency stats per stage."""
        return {
            "images": self.total,
            "ok": self.ok,
            "failed": len(self.failed),
            "seconds": seconds,
            "images_per_second": self.total / seconds if seconds > 0 else 0.0,
            "stages_ms": {stage: latency_stats(v) for stage, v in self.samples.items()},
        }
