"""Model-only latency: timed runs of a model on one uint8 batch, several models *interleaved*
(round-robin chunks) so that a change of machine load hits them alike and their ratio stays
honest; the first run and the warm-up timed apart; the report rows derived from the samples.

A record is the dict of one model x threads x batch size; its ``samples_ms`` fill as they are
measured, so an interrupted run still reports what it measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from edgecnn.tools.latency_stats import latency_stats
from edgecnn.tools.machine import OtherLoad, others_share

__all__ = ["chunks", "model_rows", "new_record", "time_interleaved", "warm"]

#: One timed run of a model (or Keras ``predict``) on its batch.
Call = Callable[[], object]
#: Progress inside timed loops (already throttled by the caller).
Tick = Callable[[str], None]

#: Pause before each interleaved chunk: TensorFlow's (or a spinning session's) idle threads
#: busy-wait for a while after a run and would slow whichever model runs next.
_SETTLE_S = 0.05


def new_record(
    name: str, threads: str, batch: int, kind: str, *, keras: bool = False
) -> dict[str, Any]:
    """An empty record: ``kind`` is the input ("synthetic" or "images")."""
    return {
        "model": name,
        "threads": threads,
        "batch_size": batch,
        "input": kind,
        "keras": keras,
        "samples_ms": [],
    }


def warm(call: Call, warmup: int) -> float:
    """Run once (timed: the first run) then ``warmup`` more times; returns the first ms."""
    started = time.perf_counter()
    call()
    first = (time.perf_counter() - started) * 1e3
    for _ in range(warmup):
        call()
    return first


def chunks(total: float, rounds: int) -> list[float]:
    """Split an iteration count or a duration into ``rounds`` near-equal shares."""
    if total <= rounds and total == int(total):
        return [1.0] * int(total)
    return [total / rounds] * rounds


def time_interleaved(
    runners: Sequence[tuple[dict[str, Any], Call]],
    budget: tuple[str, float],
    rounds: int,
    tick: Tick,
) -> None:
    """Time every runner for ``budget`` (("iterations", n) or ("duration", s)) in ``rounds``
    round-robin chunks, appending to each record's ``samples_ms``."""
    mode, total = budget
    for share in chunks(total, rounds):
        for record, call in runners:
            time.sleep(_SETTLE_S)  # let the previous runtime's thread pool go idle
            _measure(record, call, mode, share, tick)


def _measure(record: dict[str, Any], call: Call, mode: str, share: float, tick: Tick) -> None:
    samples: list[float] = record["samples_ms"]
    label = f"{record['model']} threads {record['threads']} batch {record['batch_size']}"
    started = time.perf_counter()
    done = 0
    with OtherLoad(record):
        while True:
            t0 = time.perf_counter()
            call()
            samples.append((time.perf_counter() - t0) * 1e3)
            done += 1
            if mode == "iterations" and done >= share:
                break
            if mode == "duration" and time.perf_counter() - started >= share:
                break
            tick(f"{label}: {len(samples)} runs")


def model_rows(
    records: Sequence[dict[str, Any]],
    *,
    engines_side_by_side: bool,
    agreement: dict[str, float],
    first: str | None,
) -> list[dict[str, Any]]:
    """The report's model-only rows: latency statistics and images/s per record, the ratio to
    the fastest engine (engines side by side), top-1 agreement where measured (``agreement``,
    by model name) and the speed-ups over the ``first`` model and over Keras."""
    rows = [_row(record) for record in records if record["samples_ms"]]
    onnx = [r for r in rows if not r["keras"]]
    for row in onnx:
        peers = [
            r["images_per_second"]
            for r in onnx
            if (r["batch_size"], r["threads"]) == (row["batch_size"], row["threads"])
        ]
        if engines_side_by_side and max(peers) > 0:
            row["ratio_to_fastest"] = row["images_per_second"] / max(peers)
        if row["model"] in agreement:
            row["top1_agreement"] = agreement[row["model"]]
    for row in onnx:
        peers = [r for r in rows if r["batch_size"] == row["batch_size"]]
        bases = {
            "speedup_vs_first": [
                r for r in peers if r["model"] == first and r["threads"] == row["threads"]
            ],
            "speedup_vs_keras": [r for r in peers if r["keras"]],
        }
        for key, found in bases.items():
            if found and found[0]["images_per_second"] > 0:
                row[key] = row["images_per_second"] / found[0]["images_per_second"]
    return rows


def _row(record: dict[str, Any]) -> dict[str, Any]:
    samples = record["samples_ms"]
    total_s = sum(samples) / 1e3
    images = record["batch_size"] * len(samples)
    return {key: record[key] for key in ("model", "threads", "batch_size", "input", "keras")} | {
        "latency_ms": latency_stats(samples),
        "per_image_ms": total_s * 1e3 / images,
        "images_per_second": images / total_s if total_s > 0 else 0.0,
        "samples_ms": list(samples),
        "others_cpu_share": others_share(record),
    }
