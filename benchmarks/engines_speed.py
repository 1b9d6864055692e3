"""Is edgecnn's default engine the fastest one here? Ratios measured side by side in one run.

    .venv/bin/python benchmarks/engines_speed.py              # bundled + plant models, ~3 min
    .venv/bin/python benchmarks/engines_speed.py --no-plant   # bundled models only

Model only, real inputs (the sample images, prepared as each model expects), for each model and
batch size: ``Classifier.load(model)`` with every default (``--provider auto``) against the
peers a user could set up by hand on the same ``.onnx`` at f32-exact precision:

- onnxruntime with default options (``InferenceSession(path)``: spinning threads, one per core),
- OpenVINO with the LATENCY hint (one infer request),
- OpenVINO with the THROUGHPUT hint and its optimal number of asynchronous requests, the batch
  split between them,

built here with the libraries' own APIs (not through edgecnn's engines). Rounds are interleaved
(each candidate runs a slice in turn), and the ratio is edgecnn's median images/s over the best
peer's median. Then ``predict()`` on a 640x480 JPEG against the hand-written path: OpenCV
``imdecode`` (at 1/4 scale, as edgecnn decodes) + centre crop + resize + colour order + the
same engine's run.

The plant models (random weights: speed does not depend on them) come from
``benchmarks/_data.py`` and are cached under ``scratch/bench/models`` (``--data``; exporting
them peaks at ~2.5 GB for the process tree). Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
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


def interleaved(
    candidates: dict[str, Callable[[], Any]],
    images: int,
    rounds: int,
    seconds: float,
    warmup: float = 1.0,
) -> dict[str, list[float]]:
    """images/s of each candidate per round; candidates take turns within every round. Each
    first runs for ``warmup`` seconds (at least 3 calls) untimed."""
    for call in candidates.values():  # warm-up, alike for all: first runs, compilation, and
        count, started = 0, time.perf_counter()  # edgecnn's race between its engines
        while count < 3 or time.perf_counter() - started < warmup:
            call()
            count += 1
    rates: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, call in candidates.items():
            time.sleep(0.05)  # let the previous runtime's threads go idle
            count, started = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds:
                call()
                count += 1
            rates[name].append(count * images / elapsed)
    return rates


def model_batch(path: Path, batch: int, rounds: int, seconds: float) -> dict[str, Any]:
    """edgecnn's default vs each peer on ``path`` at ``batch``."""
    edgecnn = Classifier.load(path)
    x = sample_batch(edgecnn, batch)
    peers = {
        "onnxruntime default options": onnxruntime_default(path),
        "OpenVINO LATENCY": openvino_latency(path),
        "OpenVINO THROUGHPUT async": openvino_throughput(path),
    }
    calls = {"edgecnn default": lambda: edgecnn.run(x)}
    calls |= {name: (lambda run=run: run(x)) for name, run in peers.items()}
    reference = peers["onnxruntime default options"](x)
    agree = float((edgecnn.run(x).argmax(1) == reference.argmax(1)).mean())
    rates = interleaved(calls, batch, rounds, seconds, warmup=3 * seconds * rounds / 5)
    medians = {name: statistics.median(r) for name, r in rates.items()}
    best = max((n for n in peers), key=lambda n: medians[n])
    return {
        "model": path.name,
        "batch": batch,
        "engine": edgecnn.provider,
        "choice": edgecnn.engine.describe(),
        "images_per_second": rates,
        "median": medians,
        "best_peer": best,
        "ratio": medians["edgecnn default"] / medians[best],
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
    rates = interleaved(
        {
            "hand-written OpenCV + engine": lambda: manual(path),
            "predict()": lambda: classifier.predict(path),
        },
        1,
        rounds,
        seconds,
    )
    medians = {name: statistics.median(r) for name, r in rates.items()}
    return {
        "images_per_second": rates,
        "median": medians,
        "overhead": medians["hand-written OpenCV + engine"] / medians["predict()"] - 1,
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
        "| model | batch | edgecnn default (engine) | images/s | best peer | images/s | ratio |",
        "| --- | ---: | --- | ---: | --- | ---: | ---: |",
    ]
    for r in results:
        ours, best = r["median"]["edgecnn default"], r["median"][r["best_peer"]]
        cells = [r["model"], r["batch"], r["engine"], f"{ours:.0f}", r["best_peer"], f"{best:.0f}"]
        lines.append("| " + " | ".join(map(str, cells)) + f" | **{r['ratio']:.2f}** |")
    lines += [
        "",
        "| predict() on a 640x480 JPEG | images/s |",
        "| --- | ---: |",
    ]
    for name, value in overhead["median"].items():
        lines.append(f"| {name} | {value:.0f} |")
    lines.append(f"| overhead of predict() | **{overhead['overhead']:+.1%}** |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.6, help="per candidate and round")
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
        seconds = args.seconds * (3 if "plant" in path.name else 1)
        result = model_batch(path, batch, args.rounds, seconds)
        print(
            f"{result['model']} batch {batch}: edgecnn {result['median']['edgecnn default']:.0f}"
            f" img/s on {result['engine']}; best peer {result['best_peer']} "
            f"{result['median'][result['best_peer']]:.0f}; ratio {result['ratio']:.2f}",
            flush=True,
        )
        print("   " + ", ".join(f"{n} {v:.0f}" for n, v in result["median"].items()), flush=True)
        print(f"   {result['choice']}", flush=True)
        results.append(result)
    overhead = predict_overhead(args.rounds, args.seconds)
    print(f"predict() overhead vs hand-written: {overhead['overhead']:+.1%}", flush=True)
    env["load_after"] = [round(x, 2) for x in __import__("os").getloadavg()]
    table = markdown(results, overhead, env)
    print()
    print(table)
    worst = min(r["ratio"] for r in results)
    print(
        f"\nworst ratio {worst:.2f} (target >= {TARGET}); predict() overhead "
        f"{overhead['overhead']:+.1%} (target <= {OVERHEAD_TARGET:.0%})"
    )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        data = {"environment": env, "results": results, "predict_overhead": overhead}
        (args.out / "engines.json").write_text(json.dumps(data, indent=2) + "\n")
        (args.out / "engines.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
