"""Is edgecnn's default engine the fastest one here? Ratios measured side by side in one run.

    .venv/bin/python benchmarks/engines_speed.py              # bundled + plant models, ~15 min
    .venv/bin/python benchmarks/engines_speed.py --no-plant   # bundled models only

Model only, real inputs (the sample images, prepared as each model expects), for each model and
batch size: ``Classifier.load(model)`` with every default (``--provider auto``) against the
peers a user could set up by hand on the same ``.onnx`` at f32-exact precision:

- onnxruntime with default options (``InferenceSession(path)``: spinning threads, one per core),
- OpenVINO with the LATENCY hint (one infer request),
- OpenVINO with the THROUGHPUT hint and its optimal number of asynchronous requests, the batch
  split between them,

built here with the libraries' own APIs (not through edgecnn's engines).

How the noise of a small shared VM is kept out of the ratio (measured on the 2-core box: a two-
thread onnxruntime session alone in its process flips between ~5,000 and ~2,500 images/s from
one 0.2 s slice to the next, phases of about a second, most likely the host placing the two
vCPUs on one physical core's hyperthreads or on two cores): every candidate first runs untimed
for a warm-up (5 s: steady states are compared); then edgecnn and each peer are compared in
*pairs of adjacent slices* (0.1 s each, the pair's order alternating from round to round, the
peers visited in a rotated order), with a pause before each slice so the previous runtime's
spinning threads have gone idle (onnxruntime's spin ~50 ms after a run, measured as the
process's CPU time during a sleep). The ratio to a peer is the interquartile mean of the per-
round log ratios (the middle half: robust to the slices a burst hit, steadier than the median),
with a bootstrap 90% interval; a peer edgecnn is clearly faster than (1.25x after 15 rounds) is
dropped so the rounds go to the close ones; the reported ratio is the one against the peer
edgecnn fares worst with. A *control* pair, a second onnxruntime session opened like the peer
against the peer, shows how far a ratio moves on noise alone in the same run.

The plant models (random weights: speed does not depend on them) come from
``benchmarks/_data.py`` and are cached under ``scratch/bench/models`` (``--data``; exporting
them peaks at ~2.5 GB for the process tree). Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _data

from edgecnn import Classifier
from edgecnn.runtime.classifier import default_model_path
from edgecnn.tools.machine import environment

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.95
OVERHEAD_TARGET = 0.10
#: Pause before each timed slice: onnxruntime's spinning threads hold a core ~50 ms after a
#: run (measured) and slowed a session that ran next by a third.
GAP_SECONDS = 0.08
OURS = "edgecnn default"
ORT = "onnxruntime default options"
#: A second onnxruntime session opened like the peer, timed against it as a noise control.
CONTROL = "control: onnxruntime twin"
#: After this many rounds a peer edgecnn runs at least :data:`CLEAR` times as fast is dropped.
SCREEN_ROUNDS = 15
CLEAR = 1.25
#: Untimed running of each candidate before the rounds: steady state is compared. edgecnn's
#: race (~0.6 s) and its first re-timings (after 1, 2 and 4 s of running) happen in it; what
#: they cost is measured apart (the README).
WARMUP_SECONDS = 5.0
#: Resamples behind each confidence interval.
BOOTSTRAP = 2000


def onnxruntime_default(path: Path) -> Callable[[np.ndarray], Any]:
    """onnxruntime as a user would open it: default session options, CPU provider."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def openvino_latency(path: Path) -> Callable[[np.ndarray], Any]:
    """OpenVINO, LATENCY hint, f32, one synchronous infer request."""
    import openvino as ov

    compiled = ov.Core().compile_model(
        str(path), "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    )
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> Any:
        request.infer({0: x}, share_inputs=True)
        return request.get_output_tensor(0).data.copy()

    return run


def openvino_throughput(path: Path) -> Callable[[np.ndarray], Any]:
    """OpenVINO, THROUGHPUT hint, f32, the batch split between its optimal number of
    asynchronous infer requests."""
    import openvino as ov

    compiled = ov.Core().compile_model(
        str(path), "CPU", {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "f32"}
    )
    count = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    requests = [compiled.create_infer_request() for _ in range(count)]

    def run(x: np.ndarray) -> Any:
        parts = np.array_split(x, min(count, len(x)))
        for request, part in zip(requests, parts, strict=False):
            request.start_async({0: part}, share_inputs=True)
        out = []
        for request, _ in zip(requests, parts, strict=False):
            request.wait()
            out.append(request.get_output_tensor(0).data.copy())
        return np.concatenate(out)

    return run


Pair = tuple[str, str]


def paired_slices(
    candidates: dict[str, Callable[[], Any]],
    pairs: list[Pair],
    images: int,
    rounds: int,
    seconds: float,
    warmup: float = WARMUP_SECONDS,
    optional: frozenset[Pair] = frozenset(),
) -> dict[Pair, list[tuple[float, float]]]:
    """images/s of both candidates of each pair, per round, from two adjacent ``seconds``
    slices (which one runs first alternates by round; the pairs take turns in an order rotated
    every round). Each candidate first runs for ``warmup`` seconds (at least 3 calls)
    untimed: first runs, compilation, and edgecnn's race between its engines. An ``optional``
    pair whose first candidate is clearly the faster one (:data:`CLEAR` after
    :data:`SCREEN_ROUNDS` rounds) is not timed again: the rounds go to the close pairs."""
    for call in candidates.values():
        count, started = 0, time.perf_counter()
        while count < 3 or time.perf_counter() - started < warmup:
            call()
            count += 1

    def rate(name: str) -> float:
        time.sleep(GAP_SECONDS)
        call, count, started = candidates[name], 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            call()
            count += 1
        return count * images / elapsed

    slices: dict[Pair, list[tuple[float, float]]] = {pair: [] for pair in pairs}
    active = list(pairs)
    for k in range(rounds):
        if k == SCREEN_ROUNDS:
            active = [p for p in active if p not in optional or ratio(slices[p]) < CLEAR]
        for first, second in active[k % len(active) :] + active[: k % len(active)]:
            if k % 2:
                b = rate(second)
                slices[first, second].append((rate(first), b))
            else:
                a = rate(first)
                slices[first, second].append((a, rate(second)))
    return slices


def ratio(pairs: list[tuple[float, float]]) -> float:
    """How much faster the first candidate ran: the interquartile mean of the per-round log
    ratios (robust to the slices a burst of the host hit, and steadier than the median)."""
    logs = sorted(math.log(a / b) for a, b in pairs)
    quarter = len(logs) // 4
    middle = logs[quarter : len(logs) - quarter]
    return math.exp(sum(middle) / len(middle))


def interval(pairs: list[tuple[float, float]], level: float = 0.9) -> tuple[float, float]:
    """A bootstrap ``level`` confidence interval of :func:`ratio` (rounds resampled; seeded,
    so a rerun on the same numbers prints the same interval)."""
    rng = random.Random(0)
    estimates = sorted(ratio(rng.choices(pairs, k=len(pairs))) for _ in range(BOOTSTRAP))
    tail = int(BOOTSTRAP * (1 - level) / 2)
    return estimates[tail], estimates[-tail - 1]


def median_rates(slices: dict[Pair, list[tuple[float, float]]]) -> dict[str, float]:
    """Each candidate's median images/s over every slice it ran."""
    rates: dict[str, list[float]] = {}
    for (first, second), values in slices.items():
        for a, b in values:
            rates.setdefault(first, []).append(a)
            rates.setdefault(second, []).append(b)
    return {name: statistics.median(r) for name, r in rates.items()}


def model_batch(path: Path, batch: int, rounds: int, seconds: float) -> dict[str, Any]:
    """edgecnn's default vs each peer (and the control pair) on ``path`` at ``batch``."""
    edgecnn = Classifier.load(path)
    x = sample_batch(edgecnn, batch)
    peers = {
        ORT: onnxruntime_default(path),
        "OpenVINO LATENCY": openvino_latency(path),
        "OpenVINO THROUGHPUT async": openvino_throughput(path),
    }
    twin = onnxruntime_default(path)
    calls = {OURS: lambda: edgecnn.run(x)}
    calls |= {name: (lambda run=run: run(x)) for name, run in peers.items()}
    calls[CONTROL] = lambda: twin(x)
    agree = float((edgecnn.run(x).argmax(1) == peers[ORT](x).argmax(1)).mean())
    duels = [(OURS, name) for name in peers]
    pairs = [*duels, (CONTROL, ORT)]
    slices = paired_slices(calls, pairs, batch, rounds, seconds, optional=frozenset(duels))
    ratios = {name: ratio(slices[OURS, name]) for name in peers}
    best = min(ratios, key=ratios.__getitem__)
    return {
        "model": path.name,
        "batch": batch,
        "engine": edgecnn.provider,
        "choice": edgecnn.engine.describe(),
        "images_per_second": {f"{a} | {b}": v for (a, b), v in slices.items()},
        "median": median_rates(slices),
        "ratios": ratios,
        "rounds": {name: len(slices[OURS, name]) for name in peers},
        "best_peer": best,
        "ratio": ratios[best],
        "interval": interval(slices[OURS, best]),
        "control": ratio(slices[CONTROL, ORT]),
        "control_interval": interval(slices[CONTROL, ORT]),
        "top1_agreement_vs_onnxruntime": agree,
    }


def sample_batch(classifier: Classifier, batch: int) -> np.ndarray:
    """Real pictures from samples/images, prepared for ``classifier``, repeated to ``batch``."""
    paths = sorted((ROOT / "samples" / "images").glob("*.jpg"))
    arrays = [classifier.prepare(p) for p in paths]
    return np.ascontiguousarray(np.stack((arrays * (batch // len(arrays) + 1))[:batch]))


def jpeg_640x480(folder: Path) -> Path:
    """One 640x480 JPEG drawn like the bundled model's pictures."""
    from edgecnn.data.shapes import draw_shape

    path = folder / "frame-640x480.jpg"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        image = draw_shape("star", (480, 640), np.random.default_rng(5))
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        path.write_bytes(data.tobytes())
    return path


def hand_written(classifier: Classifier) -> Callable[[Path], np.ndarray]:
    """The shortest correct OpenCV path for the bundled model on 640x480 JPEGs (decode at 1/4
    scale: 120x160 still covers 96x96, exactly what edgecnn decodes; crop fit; RGB) + the same
    engine's run."""
    spec = classifier.spec.input
    assert min(480, 640) // 4 >= max(spec.height, spec.width)
    interpolation = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR}[spec.interpolation]
    engine = classifier.engine

    def run(path: Path) -> np.ndarray:
        image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_REDUCED_COLOR_4)
        h, w = image.shape[:2]
        target = spec.width / spec.height
        if w / h > target:
            cw = round(h * target)
            image = image[:, (w - cw) // 2 : (w - cw) // 2 + cw]
        else:
            ch = round(w / target)
            image = image[(h - ch) // 2 : (h - ch) // 2 + ch]
        image = cv2.resize(image, (spec.width, spec.height), interpolation=interpolation)
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return engine.run(image[np.newaxis])[0]

    return run


def predict_overhead(rounds: int, seconds: float) -> dict[str, Any]:
    """``Classifier.predict(path)`` vs :func:`hand_written` on one 640x480 JPEG."""
    classifier = Classifier.load()
    path = jpeg_640x480(ROOT / "scratch" / "bench")
    manual = hand_written(classifier)
    assert classifier.predict(path).label == classifier.labels[int(manual(path).argmax())]
    pair = ("hand-written OpenCV + engine", "predict()")
    calls = {pair[0]: lambda: manual(path), pair[1]: lambda: classifier.predict(path)}
    slices = paired_slices(calls, [pair], 1, rounds, seconds)
    return {
        "images_per_second": slices[pair],
        "median": median_rates(slices),
        "overhead": ratio(slices[pair]) - 1,
        "interval": [x - 1 for x in interval(slices[pair])],
        "engine": classifier.provider,
    }


def markdown(results: list[dict[str, Any]], overhead: dict[str, Any], env: dict[str, Any]) -> str:
    """The README table: every ratio, the machine and its load."""
    cpu = env["cpu"]

    def yes(flag: object) -> str:
        return "yes" if flag else "no"

    machine = (
        f"Machine: {cpu['model']}, {cpu['cores']} cores, AVX-512 {yes(cpu['avx512'])}, "
        f"VNNI {yes(cpu['vnni'])}, bf16 {yes(cpu.get('bf16'))}; onnxruntime {env['onnxruntime']}, "
        f"OpenVINO {env.get('openvino', '-')}; load average {env['load_before']} before, "
        f"{env['load_after']} after; {env['date']}"
    )
    lines = [
        machine,
        "",
        "| model | batch | edgecnn default (engine) | images/s | best peer | images/s | ratio "
        "(90% interval) | control: twin / peer |",
        "| --- | ---: | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        ours, best = r["median"][OURS], r["median"][r["best_peer"]]
        cells = [r["model"], r["batch"], r["engine"], f"{ours:.0f}", r["best_peer"], f"{best:.0f}"]
        cells += [
            f"**{r['ratio']:.3f}** ({span(r['interval'])})",
            f"{r['control']:.2f} ({span(r['control_interval'])})",
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += [
        "",
        "| predict() on a 640x480 JPEG | images/s |",
        "| --- | ---: |",
    ]
    for name, value in overhead["median"].items():
        lines.append(f"| {name} | {value:.0f} |")
    low, high = overhead["interval"]
    lines.append(
        f"| overhead of predict() | **{overhead['overhead']:+.1%}** ({low:+.1%} - {high:+.1%}) |"
    )
    return "\n".join(lines)


def span(bounds: tuple[float, float]) -> str:
    """``0.93-0.99``"""
    return f"{bounds[0]:.2f}-{bounds[1]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # 120 rounds: one pair's ratio ranges 0.5-1.8 on this VM, and at 60 rounds the 90% interval
    # of a bundled batch-1 row was +-4%, as wide as the distance to the target; plant rows
    # (0.4 s slices, pairs within 0.5-1.5x) keep 40
    parser.add_argument("--rounds", type=int, default=120, help="(plant models: a third)")
    parser.add_argument("--seconds", type=float, default=0.1, help="per candidate and round")
    parser.add_argument("--no-plant", action="store_true", help="bundled models only")
    parser.add_argument("--data", type=Path, default=ROOT / "scratch" / "bench")
    parser.add_argument("--out", type=Path, help="write JSON + Markdown results here")
    args = parser.parse_args()
    import openvino as ov

    env = environment() | {"openvino": ov.get_version().split("-")[0]}
    env["cpu"]["bf16"] = "avx512_bf16" in Path("/proc/cpuinfo").read_text()
    env["load_before"] = env.pop("load_average")
    fp32 = default_model_path("cpu").with_name("shapes-fp32.onnx")
    int8 = default_model_path("cpu")
    runs = [(fp32, 1), (fp32, 16), (int8, 1), (int8, 16)]
    if not args.no_plant:
        images = _data.small_images(args.data / "small-calib", 192, size=(480, 640))
        _, plant32, plant8 = _data.plant_models(args.data / "models", images)
        runs += [(plant32, 16), (plant8, 16)]
    results = []
    for path, batch in runs:
        plant = "plant" in path.name  # 0.1-0.4 s a batch: longer slices, fewer rounds
        seconds = args.seconds * (4 if plant else 1)
        result = model_batch(path, batch, args.rounds // 3 if plant else args.rounds, seconds)
        print(
            f"{result['model']} batch {batch}: edgecnn {result['median'][OURS]:.0f}"
            f" img/s on {result['engine']}; best peer {result['best_peer']} "
            f"{result['median'][result['best_peer']]:.0f}; ratio {result['ratio']:.3f} "
            f"({span(result['interval'])}; control {result['control']:.2f})",
            flush=True,
        )
        print("   " + ", ".join(f"{n} {v:.0f}" for n, v in result["median"].items()), flush=True)
        print(f"   {result['choice']}", flush=True)
        results.append(result)
    overhead = predict_overhead(args.rounds, args.seconds)
    print(f"predict() overhead vs hand-written: {overhead['overhead']:+.1%}", flush=True)
    env["load_after"] = [round(x, 2) for x in os.getloadavg()]
    table = markdown(results, overhead, env)
    print()
    print(table)
    worst = min(r["ratio"] for r in results)
    met = worst >= TARGET and overhead["overhead"] <= OVERHEAD_TARGET
    print(  # three decimals: 0.948 printed as 0.95 once read as the target met
        f"\nworst ratio {worst:.3f} (target >= {TARGET}); predict() overhead "
        f"{overhead['overhead']:+.1%} (target <= {OVERHEAD_TARGET:.0%}): "
        f"{'met' if met else 'MISSED'}"
    )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        data = {"environment": env, "results": results, "predict_overhead": overhead}
        (args.out / "engines.json").write_text(json.dumps(data, indent=2) + "\n")
        (args.out / "engines.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
