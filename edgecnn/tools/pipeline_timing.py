"""End-to-end timing on an image folder: decode / preprocess / postprocess one image at a time
on one core, the whole :class:`~edgecnn.runtime.batch_pipeline.Pipeline` exactly as
``edgecnn classify`` runs it, and the report rows that set them against this machine's limit
(:mod:`edgecnn.tools.pipeline_limit`).

Entries are dicts filled as they are measured, so an interrupted run still reports them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgecnn.classify.input_discovery import Item
from edgecnn.preprocess import MAX_FILE_BYTES
from edgecnn.runtime.batch_pipeline import Pipeline, load_item
from edgecnn.runtime.classifier import Classifier
from edgecnn.runtime.prediction import STAGES
from edgecnn.tools.latency_stats import Tally, latency_stats
from edgecnn.tools.machine import OtherLoad, available_cores, others_share
from edgecnn.tools.pipeline_limit import machine_limit, verdict
from edgecnn.user_files import UnusableFile, check_regular, open_regular

__all__ = [
    "STAGE_SAMPLE",
    "is_regular",
    "new_pipeline_entry",
    "new_stages",
    "pipeline_rows",
    "read_all",
    "time_pipeline",
    "time_stages",
    "unreadable",
]

#: Images decoded one by one (single core) to measure the decode / preprocess stages.
STAGE_SAMPLE = 100

#: Progress inside timed loops (already throttled by the caller).
Tick = Callable[[str], None]


def new_stages(name: str) -> dict[str, Any]:
    """An empty stage-times entry of model ``name``."""
    return {"model": name, "decode": [], "preprocess": [], "postprocess": []}


def time_stages(
    entry: dict[str, Any], classifier: Classifier, items: Sequence[Item], tick: Tick
) -> None:
    """Decode / preprocess / postprocess one image at a time on one core, into ``entry``
    (:func:`new_stages`: its lists of milliseconds fill as the images are measured)."""
    spec = classifier.spec.input
    # One core: `edgecnn bench` keeps OpenCV single-threaded for the whole run (the CLI
    # owns the process); a library caller decides that for its own process.
    for item in items[:3]:  # warm-up: decoder libraries, allocator
        load_item(item, spec)
    with OtherLoad(entry):
        for i, item in enumerate(items[:STAGE_SAMPLE]):
            loaded = load_item(item, spec)
            if loaded.array is None:
                continue
            entry["decode"].append(loaded.timings["decode"])
            entry["preprocess"].append(loaded.timings["preprocess"])
            row = np.full(classifier.spec.num_classes, 1.0 / classifier.spec.num_classes)
            t0 = time.perf_counter()
            classifier.top(row, 1)
            entry["postprocess"].append((time.perf_counter() - t0) * 1e3)
            tick(f"stages {entry['model']}: {i + 1} images decoded on one core")


def new_pipeline_entry(name: str, threads: str, batch: int) -> dict[str, Any]:
    """An empty pipeline entry: its :class:`Tally` counts the results as they come."""
    return {
        "model": name,
        "threads": threads,
        "batch_size": batch,
        "tally": Tally(STAGES),
        "seconds": 0.0,
    }


def time_pipeline(
    entry: dict[str, Any],
    classifier: Classifier,
    items: Sequence[Item],
    duration: float | None,
    tick: Tick,
) -> None:
    """Run ``items`` through the classify pipeline at the entry's batch size, counting into
    its tally; with ``duration``, stop at the first whole batch after that many seconds."""
    pipeline = Pipeline(classifier, batch_size=entry["batch_size"])
    entry["workers"] = pipeline.workers
    label = f"{entry['model']} threads {entry['threads']} batch {entry['batch_size']}"
    tally: Tally = entry["tally"]
    batch = pipeline.batch_size
    started = time.perf_counter()
    try:
        with OtherLoad(entry):
            for prediction in pipeline.run(items):
                tally.add(prediction.source, prediction.error, prediction.timings)
                entry["seconds"] = time.perf_counter() - started
                if tally.total % max(batch, 16) == 0:
                    tick(f"pipeline {label}: {tally.total}/{len(items)} images")
                if (
                    duration is not None
                    and entry["seconds"] >= duration
                    and tally.total % batch == 0
                ):
                    break
    finally:
        entry["seconds"] = time.perf_counter() - started


def pipeline_rows(
    pipelines: Sequence[dict[str, Any]],
    stages: Sequence[dict[str, Any]],
    models: Sequence[dict[str, Any]],
    items: Sequence[Item],
) -> list[dict[str, Any]]:
    """The report's end-to-end rows: images/s, stage times in the pipeline and on one core,
    the model-only inference time of the same configuration (from ``models``, the model-only
    rows), this machine's limit and the verdict."""
    cores = available_cores()
    rows = []
    for entry in pipelines:
        tally: Tally = entry["tally"]
        if tally.total == 0:
            continue
        one_core = next(s for s in stages if s["model"] == entry["model"])
        inference = next(
            (
                m
                for m in models
                if (m["model"], m["threads"], m["batch_size"])
                == (entry["model"], entry["threads"], entry["batch_size"])
            ),
            None,
        )
        row = _row(entry, one_core, inference)
        row.update(machine_limit(row["one_core_ms"], row["inference_per_image_ms"], cores))
        if row.get("limit_images_per_second"):
            row["fraction_of_limit"] = row["images_per_second"] / row["limit_images_per_second"]
        row["verdict"] = verdict(row, items)
        rows.append(row)
    return rows


def _row(
    entry: dict[str, Any], stages: dict[str, Any], inference: dict[str, Any] | None
) -> dict[str, Any]:
    summary = entry["tally"].summary(entry["seconds"])
    return {
        "model": entry["model"],
        "threads": entry["threads"],
        "batch_size": entry["batch_size"],
        "workers": entry["workers"],
        "images": summary["images"],
        "ok": summary["ok"],
        "failed": summary["failed"],
        "seconds": summary["seconds"],
        "images_per_second": summary["images_per_second"],
        "in_pipeline_ms": summary["stages_ms"],
        "one_core_ms": {
            k: latency_stats(stages[k]) for k in ("decode", "preprocess", "postprocess")
        },
        "inference_per_image_ms": inference["per_image_ms"] if inference else None,
        "others_cpu_share": others_share(entry),
        "one_core_others_cpu_share": others_share(stages),
    }


def unreadable(pipelines: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """The inputs the end-to-end runs could not decode (a FIFO, a broken file), each once:
    named in the report, not dropped silently."""
    failed = {src: err for entry in pipelines for src, err in entry["tally"].failed}
    return [{"source": source, "error": error} for source, error in failed.items()]


def read_all(items: Sequence[Item]) -> None:
    """Read every file once so that no configuration pays for the cold disk cache alone."""
    for item in items:
        try:  # a FIFO or a link to /dev/zero is neither waited for nor read without end
            with open_regular(item.path or "", MAX_FILE_BYTES) as fh:
                while fh.read(1 << 22):
                    pass
        except (UnusableFile, OSError):
            pass  # reported by the pipeline as that input's error


def is_regular(path: str | None) -> bool:
    """Whether ``path`` is a regular file within the size bound (not a FIFO or a device)."""
    try:
        check_regular(path or "", MAX_FILE_BYTES)
    except UnusableFile:
        return False
    return True
