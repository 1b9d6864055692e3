"""Where a distributed run's rows go: a Parquet folder (written by the cluster in parallel), or a
CSV / JSON-lines file (small runs: rows stream through the driver), plus ``--resume`` and the
numbers for the closing summary.

A Parquet write task names its file from (write id, task index), so a task that Ray retries after
a worker died rewrites the same file: no duplicate rows. ``--resume`` reads only the ``path``
column of the files already there, in a Ray task (the set of done paths lives in the object
store, never on the driver); a file an interrupted run left unreadable is set aside as
``_partial-<name>`` (Parquet readers skip names starting with ``_``) and its inputs are redone.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgecnn.classify.result_files import ResultWriter, check_writable, format_for
from edgecnn.errors import EdgecnnError
from edgecnn.runtime.prediction import STAGES
from edgecnn.scale.inference_stage import EXTRA_COLUMNS
from edgecnn.scale.input_listing import is_uri
from edgecnn.tools.latency_stats import latency_stats

PARQUET = "parquet"
#: Stage samples kept for the summary's percentiles (thinned evenly beyond this).
SAMPLE_CAP = 100_000
_SUMMARY_COLUMNS = ["path", "status", "error", "node", "provider", *(f"{s}_ms" for s in STAGES)]


def output_kind(out: str, fmt: str | None = None) -> str:
    """``parquet`` (a folder) unless the name or ``fmt`` says csv / jsonl."""
    if fmt == PARQUET:
        return PARQUET
    if fmt or out == "-" or out.lower().endswith((".csv", ".jsonl", ".ndjson", ".json")):
        return format_for(out, fmt)
    return PARQUET


def _filesystem(out: str) -> tuple[Any, str]:
    from pyarrow import fs as pafs

    if is_uri(out):
        return pafs.FileSystem.from_uri(out)
    return pafs.LocalFileSystem(), os.path.abspath(out)


def parquet_files(out: str) -> list[str]:
    """The result files of a Parquet output folder (empty when it does not exist yet)."""
    from pyarrow import fs as pafs

    filesystem, root = _filesystem(out)
    if filesystem.get_file_info(root).type != pafs.FileType.Directory:
        return []
    listed = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
    return sorted(
        info.path
        for info in listed
        if info.type == pafs.FileType.File
        and info.base_name.endswith(".parquet")
        and not info.base_name.startswith(("_", "."))
    )


def check_output(out: str, kind: str, resume: bool) -> None:
    """Fail before the run when the output cannot be written or would mix two runs."""
    if kind != PARQUET:
        if resume:
            raise EdgecnnError(
                f"{out}: resuming a distributed run needs a Parquet folder output "
                "(a name without .csv / .jsonl)"
            )
        check_writable(out, "output")
        return
    if is_uri(out):
        return
    if os.path.isfile(out):
        raise EdgecnnError(f"output {out}: is a file; a Parquet output is a folder")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise EdgecnnError(f"output {out}: the folder {parent} does not exist")
    if not resume and parquet_files(out):
        raise EdgecnnError(
            f"output {out}: holds results already; add to them with --resume, "
            "or choose a new folder"
        )


def done_paths(out: str) -> set[str]:
    """Paths already in a Parquet output (for ``--resume``); unreadable files are set aside."""
    import pyarrow.parquet as pq

    filesystem, _ = _filesystem(out)
    done: set[str] = set()
    for name in parquet_files(out):
        try:
            table = pq.read_table(name, columns=["path"], filesystem=filesystem)
        except Exception:  # cut short by an interrupted run: redo its inputs
            folder, _, base = name.rpartition("/")
            filesystem.move(name, f"{folder}/_partial-{base}")
            continue
        done.update(table.column("path").to_pylist())
    return done


def done_paths_ref(out: str) -> Any:
    """An ObjectRef of :func:`done_paths`, computed in a Ray task next to the object store."""
    import ray

    return ray.remote(num_cpus=0.1)(done_paths).remote(out)


@dataclass
class RunTotals:
    """Counts, failures, per-node rows and (thinned) stage timings of a run, in bounded memory."""

    ok: int = 0
    failed: int = 0
    first_failures: list[tuple[str, str]] = field(default_factory=list)
    nodes: Counter[str] = field(default_factory=Counter)
    providers: set[str] = field(default_factory=set)  # what the actors' engines really ran
    samples: dict[str, list[np.ndarray]] = field(default_factory=dict)
    stride: int = 1

    @property
    def total(self) -> int:
        """Rows counted."""
        return self.ok + self.failed

    def add(self, table: Any) -> None:
        """Count one Arrow table / record batch of result rows."""
        data = {name: table.column(name).to_pylist() for name in ("path", "status", "error")}
        for path, status, error in zip(data["path"], data["status"], data["error"], strict=True):
            if status == "ok":
                self.ok += 1
            else:
                self.failed += 1
                if len(self.first_failures) < 10:
                    self.first_failures.append((path, error or ""))
        if "node" in table.column_names:
            self.nodes.update(table.column("node").to_pylist())
        if "provider" in table.column_names:
            self.providers.update(p for p in table.column("provider").to_pylist() if p)
        for stage in STAGES:
            values = table.column(f"{stage}_ms").to_numpy(zero_copy_only=False).astype(float)
            values = values[~np.isnan(values)][:: self.stride]
            self.samples.setdefault(stage, []).append(values)
        if sum(len(v) for v in self.samples.get(STAGES[0], [])) > SAMPLE_CAP:
            self.stride *= 2
            for stage, parts in self.samples.items():
                self.samples[stage] = [np.concatenate(parts)[::2]]

    def stages_ms(self) -> dict[str, dict[str, float]]:
        """Latency statistics per stage (from the kept samples)."""
        return {
            stage: latency_stats(np.concatenate(parts) if parts else [])
            for stage, parts in self.samples.items()
        }


def totals_of(out: str, files: list[str]) -> RunTotals:
    """Read the summary columns of the Parquet files a run wrote, batch by batch."""
    import pyarrow.parquet as pq

    filesystem, _ = _filesystem(out)
    totals = RunTotals()
    for name in files:
        with filesystem.open_input_file(name) as fh:
            for batch in pq.ParquetFile(fh).iter_batches(columns=_SUMMARY_COLUMNS):
                totals.add(batch)
    return totals


def write_parquet(dataset: Any, out: str) -> RunTotals:
    """Write the rows as a Parquet folder (the cluster writes in parallel); totals of this run."""
    before = set(parquet_files(out))
    dataset.write_parquet(out)
    return totals_of(out, [f for f in parquet_files(out) if f not in before])


def write_rows_file(dataset: Any, out: str, fmt: str, top_k: int) -> RunTotals:
    """Stream the rows through the driver into a CSV / JSON-lines file (small runs)."""
    writer = ResultWriter(out, fmt, top_k, extra=EXTRA_COLUMNS)
    totals = RunTotals()
    try:
        for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            for row in batch.to_pylist():
                writer.write_row(row, flush=False)
            totals.add(batch)
    finally:
        writer.close()
    return totals
