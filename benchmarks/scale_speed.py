"""``classify --engine ray`` vs local ``classify`` on one box, side by side in one run.

For each data set (>= 20,000 small images, >= 300 large photos) it runs, in this order:

- local: what ``edgecnn classify DIR -o rows.csv`` runs (decode threads + one session, rows to
  a CSV file), timed from the first input to the last row written;
- ray: a local Ray instance (all of this machine's CPUs, a bounded object store), started and
  warmed as the CLI does (:mod:`edgecnn.scale.local_ray`; ``--cold``: not warmed), running
  :func:`edgecnn.scale.classify_dataset` and writing Parquet. Start-up (Ray up, model read and
  checked, decode workers warmed, inference actors loaded) is reported on its own line;
  images/s counts the rows finished after the last actor was ready, over the time from then
  to the end of the write.

It prints images/s for both, the ratio ray / local, and the peak object-store use sampled every
0.5 s during the Ray run (it must stay bounded whatever the number of images). Run it alone
on the machine (``/work/bin/quiet``); load average and CPU are recorded.

    python benchmarks/scale_speed.py --small 20000 --large 300 --json results/scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import large_photos, small_images

from edgecnn.classify.input_discovery import scan
from edgecnn.classify.result_files import ResultWriter
from edgecnn.runtime.batch_pipeline import Pipeline
from edgecnn.runtime.classifier import Classifier, default_model_path
from edgecnn.scale.inference_stage import ClassifyImages
from edgecnn.tools.machine import available_cores, cpu_info, environment


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_local(folder: Path, model: Path, out: Path, batch: int) -> dict[str, Any]:
    """``edgecnn classify FOLDER -r -o rows.csv``'s work, timed."""
    classifier = Classifier.load(model, spinning=False)
    items = scan([str(folder)], recursive=True).items
    writer = ResultWriter(str(out), "csv", 1)
    started = time.perf_counter()
    ok = 0
    for prediction in Pipeline(classifier, batch_size=batch).run(items):
        writer.write(prediction)
        ok += prediction.ok
    writer.close()
    seconds = time.perf_counter() - started
    return {
        "images": len(items),
        "ok": ok,
        "seconds": seconds,
        "images_per_second": len(items) / seconds,
    }


class TimedClassify(ClassifyImages):
    """The inference actor, plus when it became ready and when each batch finished."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ready_at = time.time()

    def __call__(self, batch: dict[str, Any]) -> Any:
        import pyarrow as pa

        table = super().__call__(batch)
        table = table.append_column("ready_at", pa.array([self.ready_at] * len(table)))
        return table.append_column("done_at", pa.array([time.time()] * len(table)))


class StoreSampler:
    """Samples Ray's object-store use (MiB, all nodes) every ``interval`` seconds."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import ray

        total = ray.cluster_resources().get("object_store_memory", 0.0)
        while not self._stop.is_set():
            # used = capacity - available, as the GCS sees it: a cheap query (asking every
            # worker for its references, as `ray memory` does, would slow the run down)
            free = ray.available_resources().get("object_store_memory", total)
            self.peak_mib = max(self.peak_mib, (total - free) / 2**20)
            self._stop.wait(self.interval)

    def __enter__(self) -> StoreSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_ray(folder: Path, model: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """classify_dataset -> write_parquet on a fresh local Ray instance, timed as the docstring
    says."""
    import pyarrow.parquet as pq
    import ray

    from edgecnn.scale import classify_dataset, local_ray, open_model
    from edgecnn.scale.dataset_pipeline import (
        PREPARE_CPUS,
        default_prepare_threads,
        given_settings,
        guess_prepare_batch,
    )

    t0 = time.time()
    local_ray.start(
        num_cpus=available_cores(),
        object_store_memory=args.object_store_mb * 2**20,
        include_dashboard=False,
        logging_level="ERROR",
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    handle = open_model(str(model))
    prepare_cpus = args.prepare_cpus or PREPARE_CPUS
    warm = 0 if args.cold else local_ray.warm_up(args.actors, args.actor_cpus or 1.0, prepare_cpus)
    tuning = given_settings(  # otherwise classify_dataset's defaults, as the CLI runs
        batch_size=args.ray_batch,
        actor_cpus=args.actor_cpus,
        prepare_cpus=args.prepare_cpus,
        prepare_batch=args.prepare_batch,
        prepare_threads=args.prepare_threads,
    )
    dataset = classify_dataset(
        [str(folder)],
        handle,
        recursive=True,
        actors=(args.actors, args.actors),
        inference=TimedClassify,
        **tuning,
    )
    with StoreSampler() as sampler:
        dataset.write_parquet(str(out))
        end = time.time()
    table = pq.read_table(out, columns=["path", "status", "ready_at", "done_at"])
    prepare_batch = args.prepare_batch or guess_prepare_batch([str(folder)])
    ray.shutdown()
    ready = max(table.column("ready_at").to_pylist())
    done_at = table.column("done_at").to_pylist()
    counted = sum(1 for t in done_at if t >= ready)
    paths = table.column("path").to_pylist()
    return {
        "images": table.num_rows,
        "unique_paths": len(set(paths)),
        "ok": table.column("status").to_pylist().count("ok"),
        "startup_seconds": ready - t0,
        "counted_images": counted,
        "seconds": end - ready,
        "images_per_second": counted / (end - ready),
        "end_to_end_seconds": end - t0,
        "peak_object_store_mib": sampler.peak_mib,
        "object_store_limit_mib": args.object_store_mb,
        "prepare_batch": prepare_batch,
        "warm_workers": warm,
        "prepare_threads": args.prepare_threads or default_prepare_threads(prepare_batch),
    }


def compare(name: str, folder: Path, model: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``args.rounds`` rounds, alternating which engine goes first; the median ratio."""
    rounds = []
    for number in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="scale-bench-") as scratch:
            runs: dict[str, Any] = {}
            for engine in ("local", "ray") if number % 2 == 0 else ("ray", "local"):
                say(f"[{name}] round {number + 1}: {engine} ...")
                if engine == "local":
                    runs[engine] = run_local(
                        folder, model, Path(scratch) / "r.csv", args.local_batch
                    )
                else:
                    runs[engine] = run_ray(folder, model, Path(scratch) / "r.parquet", args)
        runs["ratio"] = runs["ray"]["images_per_second"] / runs["local"]["images_per_second"]
        rounds.append(runs)
    print(f"{name}: {rounds[0]['local']['images']} images, {args.rounds} rounds")
    for number, runs in enumerate(rounds, 1):
        local, ray_run = runs["local"], runs["ray"]
        print(
            f"  round {number}: local {local['images_per_second']:7.1f} images/s, "
            f"ray {ray_run['images_per_second']:7.1f} images/s "
            f"({ray_run['counted_images']} rows after start-up in {ray_run['seconds']:.1f} s), "
            f"ratio {runs['ratio']:.2f}x"
        )
        print(
            f"           ray start-up (Ray up + model checked + actors loaded): "
            f"{ray_run['startup_seconds']:.1f} s; end to end {ray_run['end_to_end_seconds']:.1f} s"
        )
        print(
            f"           rows {ray_run['images']} ({ray_run['unique_paths']} distinct), ok "
            f"{ray_run['ok']} (local {local['ok']}); peak object store "
            f"{ray_run['peak_object_store_mib']:.0f} MiB of {ray_run['object_store_limit_mib']}; "
            f"prepare batch {ray_run['prepare_batch']} x {ray_run['prepare_threads']} thread(s); "
            f"{ray_run['warm_workers']} warm decode worker(s)"
        )
    ratio = statistics.median(runs["ratio"] for runs in rounds)
    print(f"  median ratio ray/local: {ratio:.2f}x", flush=True)
    return {"rounds": rounds, "median_ratio": ratio}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=20000, help="small images (0: skip)")
    parser.add_argument("--large", type=int, default=300, help="large photos (0: skip)")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "edgecnn-bench")
    parser.add_argument("--model", type=Path, help="ONNX model (default: the bundled int8 one)")
    parser.add_argument("--local-batch", type=int, default=16, help="local classify's default")
    parser.add_argument("--ray-batch", type=int, help="default: classify_dataset's (the CLI's)")
    parser.add_argument("--prepare-batch", type=int, help="default: classify_dataset's")
    parser.add_argument(
        "--prepare-batch-large", type=int, help="for the photos (default: as small)"
    )
    parser.add_argument("--prepare-threads", type=int, help="default: classify_dataset's")
    parser.add_argument("--actors", type=int, default=1, help="the CLI's default on 2 CPUs")
    parser.add_argument("--actor-cpus", type=float, help="default: classify_dataset's")
    parser.add_argument("--prepare-cpus", type=float, help="default: classify_dataset's")
    parser.add_argument(
        "--cold", action="store_true", help="no warm decode workers (as on an existing cluster)"
    )
    parser.add_argument("--object-store-mb", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3, help="alternating local / ray order")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    model = args.model or default_model_path("cpu")
    env = environment()
    say(
        f"machine: {cpu_info().get('model')}, {available_cores()} cores, load {env['load_average']}"
    )
    from edgecnn.scale import dataset_pipeline as dp

    print(
        f"ray defaults (classify_dataset, as the CLI runs): batch {dp.INFER_BATCH}, prepare batch "
        f"~{dp.PREPARE_BYTES >> 20} MB of files (16-{dp.PREPARE_BATCH}), {dp.PREPARE_CPUS} CPU per "
        f"prepare task ({dp.PREPARE_THREADS} threads for files of {dp.THREADED_BYTES >> 10} KB "
        "or more), 1 CPU per actor; "
        f"given here: {args.ray_batch=}, {args.prepare_batch=}, {args.prepare_batch_large=}, "
        f"{args.prepare_threads=}, {args.actor_cpus=}, {args.prepare_cpus=}, {args.actors=}"
    )
    report: dict[str, Any] = {
        "machine_before": env,
        "settings": {k: str(v) for k, v in vars(args).items()},
    }
    if args.small:
        folder = small_images(args.data / f"small-{args.small}", args.small)
        report["small"] = compare(f"{args.small} small images (160x120 JPEG)", folder, model, args)
    if args.large:
        folder = large_photos(args.data / "large", args.large)
        if args.prepare_batch_large:
            args = argparse.Namespace(**{**vars(args), "prepare_batch": args.prepare_batch_large})
        report["large"] = compare(
            f"{args.large} large photos (4000x2672 JPEG)", folder, model, args
        )
    report["machine_after"] = environment()
    print(
        f"load average before {env['load_average']}, "
        f"after {report['machine_after']['load_average']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    main()
