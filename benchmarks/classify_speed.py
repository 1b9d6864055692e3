"""How fast is `edgecnn classify` on this machine? Ratios measured side by side in one run.

    .venv/bin/python benchmarks/classify_speed.py                # full: 300 photos, 1000 + 10000
    .venv/bin/python benchmarks/classify_speed.py --large 60 --small 300 --memory 2000  # quick

(a) >= 300 large (~4000x2700) JPEG photos, the ``plant`` network (256x256x3, 69 M parameters):
    `edgecnn classify` (fp32 and int8) vs the tutorials' Keras pipeline
    (``image_dataset_from_directory(image_size=(256, 256), crop_to_aspect_ratio=True,
    batch_size=16)`` + ``model.predict``) on the same network and images; the pipeline vs this
    machine's limit ``1 / (decode+preprocess s per image on one core / cores + model-only
    inference s per image)``; int8 vs fp32 model-only.
(b) >= 1000 small images with the bundled model: the pipeline vs the machine's limit.
(c) Peak memory (ru_maxrss) of `edgecnn classify` on 10,000 images vs 100, in subprocesses.

Everything is measured with :class:`~edgecnn.tools.model_bench.Benchmark` (behind `edgecnn bench`),
so these numbers and `edgecnn bench --images DIR --keras M.keras` agree. Generated images and
models are cached under ``scratch/bench/`` (ignored by git). Weights are random: speed does not
depend on them. Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _data

from edgecnn.tools import bench_report
from edgecnn.tools.bench_settings import Settings, parse_list
from edgecnn.tools.machine import environment
from edgecnn.tools.model_bench import Benchmark
from edgecnn.tools.report_files import write_json, write_text

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {
    "fp32_vs_keras_pipeline": 2.0,
    "int8_vs_keras_pipeline": 3.0,
    "large_fp32_fraction_of_limit": 0.9,
    "large_int8_fraction_of_limit": 0.9,
    "small_fraction_of_limit": 0.9,
    "int8_vs_fp32_model_only": 1.5,
    "memory_10000_vs_100": 1.2,
}

LABELS = {
    "fp32_vs_keras_pipeline": "(a) `edgecnn classify` fp32 vs Keras tutorial pipeline, images/s",
    "int8_vs_keras_pipeline": "(a) `edgecnn classify` int8 vs Keras tutorial pipeline, images/s",
    "large_fp32_fraction_of_limit": "(a) pipeline vs machine limit, plant fp32",
    "large_int8_fraction_of_limit": "(a) pipeline vs machine limit, plant int8",
    "small_fraction_of_limit": "(b) pipeline vs machine limit, bundled model, small images",
    "int8_vs_fp32_model_only": "(a) int8 vs fp32 model-only, images/s",
    "memory_10000_vs_100": "(c) peak memory, 10,000 vs 100 images",
}


def say(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)


def rows_by_model(report: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    """``report[key]`` rows (non-Keras) by model name."""
    return {r["model"]: r for r in report[key] if not r.get("keras")}


def run_large(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """(a): plant fp32 / int8 / Keras on the large photos."""
    photos = _data.large_photos(args.data / "large", args.large)
    keras_path, fp32, int8 = _data.plant_models(args.data / "models", photos)
    keras = None if args.skip_keras else keras_path
    say(f"(a) {args.large} large photos, plant fp32 + int8" + ("" if keras is None else " + Keras"))
    return Benchmark([fp32, int8], settings, images=photos, keras=keras, progress=None).run()


def run_small(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """(b): the bundled (int8) model on small images."""
    pool = _data.small_images(args.data / "small", max(args.small, args.memory))
    folder = _data.subset(pool, args.data / f"small-{args.small}", args.small)
    _fp32, int8 = _data.shapes_models(args.data / "models", pool)
    say(f"(b) {args.small} small images, {int8.name}")
    return Benchmark([int8], settings, images=folder).run()


_CHILD = """
import sys
from edgecnn.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    if exc.code:
        raise
with open("/proc/self/status") as fh:
    print(next(line.split()[1] for line in fh if line.startswith("VmHWM:")))
"""


def peak_rss_mb(folder: Path, model: Path, batch: int) -> float:
    """Peak resident memory (MB) of `edgecnn classify FOLDER` in a fresh subprocess.

    Read as the child's own ``VmHWM`` (reset by exec): ``ru_maxrss`` from ``wait4`` would
    carry over the parent's RSS at fork time (here: TensorFlow and a 69 M-parameter model).
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.csv"
        command = [
            sys.executable, "-c", _CHILD, "classify", str(folder), "-q",
            "-m", str(model), "-b", str(batch), "-o", str(out),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"classify failed on {folder}: {done.stderr.strip()[-500:]}")
        return int(done.stdout.split()[-1]) / 1024  # kB -> MB


def run_memory(args: argparse.Namespace, batch: int) -> dict[str, float]:
    """(c): peak RSS classifying ``--memory`` images vs 100."""
    pool = _data.small_images(args.data / "small", args.memory)
    many = _data.subset(pool, args.data / f"small-{args.memory}", args.memory)
    few = _data.subset(pool, args.data / "small-100", 100)
    _, int8 = _data.shapes_models(args.data / "models", pool)
    say(f"(c) peak memory: {args.memory} images vs 100, in subprocesses")
    small_mb = peak_rss_mb(few, int8, batch)
    large_mb = peak_rss_mb(many, int8, batch)
    return {"images_100_mb": small_mb, f"images_{args.memory}_mb": large_mb,
            "ratio": large_mb / small_mb}  # fmt: skip


def ratios(large: dict[str, Any] | None, small: dict[str, Any] | None) -> dict[str, float]:
    """The ratios the issue asks for, from one round's reports."""
    out: dict[str, float] = {}
    if large is not None:
        e2e = list(rows_by_model(large, "end_to_end").values())
        fp32, int8 = e2e[0], e2e[1]
        if "speedup_vs_keras_pipeline" in fp32:
            out["fp32_vs_keras_pipeline"] = fp32["speedup_vs_keras_pipeline"]
            out["int8_vs_keras_pipeline"] = int8["speedup_vs_keras_pipeline"]
        out["large_fp32_fraction_of_limit"] = fp32["fraction_of_limit"]
        out["large_int8_fraction_of_limit"] = int8["fraction_of_limit"]
        model_only = list(rows_by_model(large, "model_only").values())
        out["int8_vs_fp32_model_only"] = model_only[1]["speedup_vs_first"]
    if small is not None:
        out["small_fraction_of_limit"] = small["end_to_end"][0]["fraction_of_limit"]
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the rounds, print every ratio per round and the median, write the reports."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "scratch" / "bench")
    parser.add_argument("--large", type=int, default=300, help="large photos (a)")
    parser.add_argument("--small", type=int, default=2000, help="small images (b), >= 1000")
    parser.add_argument("--memory", type=int, default=10000, help="images for the memory run")
    parser.add_argument("--batch-size", type=int, default=16, help="as `edgecnn classify`")
    parser.add_argument("--threads", default="auto", help="onnxruntime threads (auto: default)")
    parser.add_argument("--iterations", type=int, default=6, help="model-only runs per model")
    parser.add_argument("--rounds", type=int, default=3, help="repeat (a) and (b): median")
    parser.add_argument("--skip", default="", help="comma list of: large,small,memory,keras")
    parser.add_argument("--out", type=Path, default=ROOT / "scratch" / "bench" / "results")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    args.skip_keras = "keras" in skip
    args.out.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        batch_sizes=(args.batch_size,),
        threads=parse_list(args.threads, allow_auto=True),
        warmup=2,
        iterations=args.iterations,  # (not --duration, which would also cut the folder passes)
    )
    say(f"machine before: load average {environment()['load_average']}")
    rounds: list[dict[str, float]] = []  # one dict of ratios per round of (a) and (b)
    reports: dict[str, dict[str, Any]] = {}
    for n in range(args.rounds):
        large = None if "large" in skip else run_large(args, settings)
        small = None if "small" in skip else run_small(args, settings)
        rounds.append(ratios(large, small))
        reports.update({k: v for k, v in (("large", large), ("small", small)) if v})
        say(f"round {n + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in rounds[-1].items()))
    memory = None if "memory" in skip else run_memory(args, args.batch_size)
    rounds = [r for r in rounds if r]
    summary = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]} if rounds else {}
    if memory:
        summary["memory_10000_vs_100"] = memory["ratio"]
    for name, report in reports.items():
        print(f"\n== ({'a' if name == 'large' else 'b'}) {name} images ==")
        print(bench_report.terminal(report))
        write_json(args.out / f"{name}.json", report)
        write_text(args.out / f"{name}.md", bench_report.markdown(report))
        try:
            bench_report.plot(report, args.out / f"{name}.png")
        except Exception as exc:  # a missing matplotlib must not lose the measurements
            say(f"no plot: {exc}")
    env = environment()
    print(f"\n== ratios (median of {len(rounds)} round(s); load average after "
          f"{env['load_average']}) ==")  # fmt: skip
    table = [
        f"Measured {time.strftime('%Y-%m-%d')} on {env['cpu']['model']} "
        f"({env['cpu']['cores']} cores, AVX2 {'yes' if env['cpu']['avx2'] else 'no'}, "
        f"VNNI {'yes' if env['cpu']['vnni'] else 'no'}), onnxruntime {env['onnxruntime']}, "
        f"OpenCV {env['opencv']}; median of {len(rounds)} round(s), each measured side by side.",
        "",
        "| ratio | measured | target | |",
        "| --- | ---: | ---: | --- |",
    ]
    for key, value in summary.items():
        target = TARGETS[key]
        better = value <= target if key.startswith("memory") else value >= target
        shown = f"{value:.0%}" if "fraction" in key else f"{value:.2f}x"
        goal = ("<= " if key.startswith("memory") else ">= ") + (
            f"{target:.0%}" if "fraction" in key else f"{target:.1f}x"
        )
        verdict = "ok" if better else "MISSED"
        print(f"{key:32s} {shown:>8s}   target {goal:>7s}  {verdict}")
        table.append(f"| {LABELS[key]} | {shown} | {goal} | {verdict} |")
    (args.out / "ratios.md").write_text("\n".join(table) + "\n", encoding="utf-8")
    if memory:
        print(f"peak RSS: {json.dumps({k: round(v, 3) for k, v in memory.items()})}")
    write_json(
        args.out / "ratios.json",
        {
            "rounds": rounds,
            "median": summary,
            "memory": memory,
            "date": time.strftime("%Y-%m-%d %H:%M"),
        },
    )


if __name__ == "__main__":
    main()
