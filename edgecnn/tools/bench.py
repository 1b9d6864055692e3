"""Benchmarks users can trust: model-only latency, end-to-end stages, and the machine's limit.

Model-only mode runs each model on uint8 batches (synthetic, or real images when a folder is
given) for every batch size x thread count, after a warm-up reported on its own (session
creation, first run). Several models are measured *interleaved* (round-robin chunks), so a
change of machine load hits them alike and their ratio stays honest.

End-to-end mode (an image folder) measures decode / preprocess / postprocess one image at a time
on one core, and the whole
:class:`~edgecnn.runtime.batch_pipeline.Pipeline` exactly as ``edgecnn classify``
runs it. With model-only inference at the same batch size and threads it derives this machine's
limit for the pipeline, ``1 / (decode+preprocess per image / cores + inference per image)``, and
a one-line verdict naming the bounding stage.

``keras`` (optional): the same network in Keras ``model.predict`` and the tutorials' pipeline
(``image_dataset_from_directory`` + ``predict``), in the same run. Only this path imports
TensorFlow. The report is a JSON-ready dict; :mod:`edgecnn.tools.bench_report` renders it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import _deps
from edgecnn.classify.input_discovery import Item, scan
from edgecnn.errors import EdgecnnError
from edgecnn.preprocess import MAX_FILE_BYTES
from edgecnn.runtime.batch_pipeline import Pipeline, load_item
from edgecnn.runtime.classifier import Classifier
from edgecnn.runtime.engines.base import PROVIDERS
from edgecnn.runtime.prediction import STAGES
from edgecnn.spec import InputSpec
from edgecnn.tools.latency_stats import Tally, latency_stats
from edgecnn.tools.machine import OtherLoad, available_cores, environment, others_share, sha256
from edgecnn.user_files import UnusableFile, check_regular, open_regular

__all__ = [
    "BenchError",
    "Benchmark",
    "Settings",
    "machine_limit",
    "model_names",
    "parse_list",
    "verdict",
]

#: Version of the JSON report layout.
SCHEMA = 1
#: Images decoded one by one (single core) to measure the decode / preprocess stages.
STAGE_SAMPLE = 100

Progress = Callable[[str], None]
#: Most progress updates per second: a terminal write per run of a sub-millisecond model would
#: compete with the measured cores.
PROGRESS_RATE = 5.0
#: Pause before each interleaved chunk: TensorFlow's (or a spinning session's) idle threads
#: busy-wait for a while after a run and would slow whichever model runs next.
_SETTLE_S = 0.05


class BenchError(EdgecnnError):
    """A benchmark that cannot run as asked (bad settings, no images, rejected batch size)."""


@dataclass(frozen=True)
class Settings:
    """What to measure. ``threads`` entries: an int, or None for onnxruntime's default (what
    ``edgecnn classify`` uses). Without ``iterations`` or ``duration``, 2 s per configuration."""

    batch_sizes: tuple[int, ...] = (1, 8, 32)
    threads: tuple[int | None, ...] = (1, None)
    warmup: int = 3
    iterations: int | None = None
    duration: float | None = None
    provider: str = "auto"
    rounds: int = 3

    def __post_init__(self) -> None:
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise BenchError(f"batch sizes must be >= 1, not {list(self.batch_sizes)}")
        if not self.threads or any(t is not None and t < 1 for t in self.threads):
            raise BenchError(f"thread counts must be >= 1, not {list(self.threads)}")
        if self.warmup < 0:
            raise BenchError(f"`warmup` must be >= 0, not {self.warmup}")
        if self.iterations is not None and self.duration is not None:
            raise BenchError("give `iterations` or `duration`, not both")
        if self.iterations is not None and self.iterations < 1:
            raise BenchError(f"`iterations` must be >= 1, not {self.iterations}")
        if self.duration is not None and not self.duration > 0:
            raise BenchError(
                f"`duration` must be a positive number of seconds, not {self.duration}"
            )
        if self.rounds < 1:
            raise BenchError("rounds must be >= 1")
        if self.provider.strip().lower() != "all":
            parse_providers(self.provider)

    @property
    def providers(self) -> tuple[str, ...]:
        """The engines to measure side by side (see :func:`parse_providers`)."""
        return parse_providers(self.provider)

    @property
    def budget(self) -> tuple[str, float]:
        """("iterations", n) or ("duration", seconds) per model and configuration."""
        if self.iterations is not None:
            return "iterations", float(self.iterations)
        return "duration", self.duration if self.duration is not None else 2.0


def parse_providers(text: str) -> tuple[str, ...]:
    """``auto``, one engine, a comma-separated list, or ``all``: ``auto`` plus every engine
    that loads here (those that do not are left out; ``edgecnn doctor`` says why)."""
    if text.strip().lower() == "all":
        from edgecnn.runtime.engines.registry import engine_statuses

        return ("auto", *[s.engine for s in engine_statuses() if s.loads])
    names = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    wrong = [name for name in names if name not in PROVIDERS]
    if not names or wrong:
        raise BenchError(
            f"provider {text!r}: use {', '.join(PROVIDERS)}, a comma-separated list, or all"
        )
    return names


def throttled(progress: Progress, rate: float = PROGRESS_RATE) -> Progress:
    """``progress`` called at most ``rate`` times a second; messages in between are dropped
    (the next one shown is newer anyway)."""
    interval = 1.0 / rate
    last = -interval

    def show(message: str) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= interval:
            last = now
            progress(message)

    return show


def thread_label(threads: int | None) -> str:
    """``"auto"`` for onnxruntime's default, else the number."""
    return "auto" if threads is None else str(threads)


def parse_list(text: str, *, allow_auto: bool = False) -> tuple[int | None, ...]:
    """``"1,8,32"`` -> (1, 8, 32); with ``allow_auto`` the word ``auto`` gives None."""
    values: list[int | None] = []
    for part in text.split(","):
        part = part.strip().lower()
        if allow_auto and part == "auto":
            values.append(None)
            continue
        try:
            values.append(int(part))
        except ValueError:
            extra = " or 'auto'" if allow_auto else ""
            raise BenchError(f"{text!r}: {part!r} is not a whole number{extra}") from None
    return tuple(dict.fromkeys(values))


def describe_model(classifier: Classifier, name: str) -> dict[str, Any]:
    """The report's facts about one model, with the provider its session really uses."""
    spec = classifier.spec
    return {
        "name": name,
        "path": classifier.path,
        "sha256": sha256(classifier.path),
        "precision": spec.precision,
        "architecture": spec.architecture,
        "input": list(spec.input.shape),
        "fit": spec.input.fit,
        "classes": spec.num_classes,
        "provider": classifier.provider,
    }


def model_names(paths: Sequence[str]) -> list[str]:
    """Short distinct names for the report: file names, or more of the path when they clash."""
    names = [Path(p).name for p in paths]
    if len(set(names)) != len(names):
        names = [str(p) for p in paths]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return unique


# ----------------------------------------------------------------------------- measuring


def _chunks(total: float, rounds: int) -> list[float]:
    """Split an iteration count or a duration into ``rounds`` near-equal shares."""
    if total <= rounds and total == int(total):
        return [1.0] * int(total)
    return [total / rounds] * rounds


def _load(path: str | None, provider: str, threads: int | None) -> tuple[Classifier, float]:
    """Load (for TensorRT: build or load its engine, warm-up included), timed."""
    started = time.perf_counter()
    classifier = Classifier.load(path, provider=provider, threads=threads)
    return classifier, time.perf_counter() - started


def _check_batches(classifier: Classifier, batch_sizes: Sequence[int]) -> None:
    fixed = classifier.fixed_batch
    wrong = [b for b in batch_sizes if fixed is not None and b != fixed]
    if wrong:
        raise BenchError(
            f"{classifier.path}: the model's batch dimension is fixed to {fixed}; batch size "
            f"{', '.join(map(str, wrong))} cannot run (use `batch_sizes` {fixed})"
        )


class Benchmark:
    """One benchmark run. Results accumulate in :attr:`records` as they are measured, so an
    interrupted run (Ctrl-C) still reports everything measured so far via :meth:`report`."""

    def __init__(
        self,
        models: Sequence[str | None],
        settings: Settings,
        *,
        images: str | Path | None = None,
        keras: str | Path | None = None,
        progress: Progress | None = None,
        unsafe: bool = False,
    ) -> None:
        self.models = list(models) or [None]
        self.settings = settings
        self.images = None if images is None else Path(images)
        self.keras_path = None if keras is None else Path(keras)
        self.unsafe = unsafe  # load a .keras needing unsafe deserialization (runs its code)
        self.progress = progress or (lambda message: None)  # phase changes: always shown
        self.tick = throttled(self.progress)  # inside timed loops: a few updates a second
        self.items: list[Item] = []
        self.model_info: list[dict[str, Any]] = []
        self.warmup: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []
        self.stages: list[dict[str, Any]] = []
        self.pipelines: list[dict[str, Any]] = []
        self.keras_info: dict[str, Any] | None = None
        self.keras_pipeline: dict[str, Any] | None = None
        self.interrupted = False
        self.environment = environment()
        self._input_cache: dict[tuple[int, int, int], tuple[str, np.ndarray]] = {}
        self._agreement: dict[str, float] = {}
        #: engines measured side by side (``all`` resolved once: it opens every backend)
        self.providers = settings.providers
        self._references: dict[str | None, np.ndarray] = {}

    # --------------------------------------------------------------- driver
    def run(self) -> dict[str, Any]:
        """Measure everything asked for; returns :meth:`report`."""
        if self.images is not None:
            self.items = self._scan_images(self.images)
            _read_all(self.items)  # every pass then reads from the page cache, like the next
        keras_model = self._load_keras() if self.keras_path is not None else None
        for threads in self.settings.threads:
            classifiers = self._load_all(threads)
            keras_here = keras_model if threads == self.settings.threads[-1] else None
            for batch in self.settings.batch_sizes:
                self._model_only(classifiers, threads, batch, keras_here)
            if self.items:
                for name, classifier in classifiers:
                    for batch in self.settings.batch_sizes:
                        self._end_to_end(name, classifier, threads, batch)
        if keras_model is not None and self.items:
            special = [i.path for i in self.items if not _is_regular(i.path)]
            if special:  # TensorFlow's reader would wait on a FIFO or read /dev/zero forever
                self.progress(
                    f"Keras tutorial pipeline skipped: {len(special)} input(s) are not regular "
                    f"files (e.g. {special[0]})"
                )
            else:
                self._keras_tutorial(keras_model)
        return self.report()

    def _scan_images(self, folder: Path) -> list[Item]:
        if not folder.exists():
            raise BenchError(f"{folder}: no such folder")
        if not folder.is_dir():
            raise BenchError(f"{folder}: `images` needs a folder of images")
        items = [item for item in scan([folder], recursive=True).items if item.path]
        if not items:
            raise BenchError(f"{folder}: the image folder is empty")
        return items

    def _load_all(self, threads: int | None) -> list[tuple[str, Classifier]]:
        names = model_names([str(m) if m else "default" for m in self.models])
        providers = self.providers
        loaded = []
        for base, path, provider in (
            (n, m, p) for n, m in zip(names, self.models, strict=True) for p in providers
        ):
            name = base if len(providers) == 1 else f"{base} [{provider}]"
            self.progress(f"loading {name} (threads {thread_label(threads)})")
            file = None if path is None else str(path)
            classifier, seconds = _load(file, provider, threads)
            _check_batches(classifier, self.settings.batch_sizes)
            if len(providers) > 1 and not any(m["name"] == name for m in self.model_info):
                self._agreement[name] = self._top1_agreement(file, classifier)
            if not any(m["name"] == name for m in self.model_info):
                self.model_info.append(describe_model(classifier, name))
            self.warmup.append(
                {"model": name, "threads": thread_label(threads), "session_s": seconds}
            )
            loaded.append((name, classifier))
        return loaded

    def _top1_agreement(self, path: str | None, classifier: Classifier) -> float:
        """Share of the benchmark's inputs whose top-1 matches onnxruntime CPU (exact f32) on
        the same file: what an engine's own numerics change."""
        _, data = self._inputs(classifier.spec.input)
        if path not in self._references:
            reference = Classifier.load(path, provider="cpu")
            self._references[path] = reference.run(data).argmax(1)
        return float((classifier.run(data).argmax(1) == self._references[path]).mean())

    def _inputs(self, spec: InputSpec) -> tuple[str, np.ndarray]:
        """("synthetic" | "images", a uint8 batch as large as the largest batch size)."""
        if spec.shape in self._input_cache:
            return self._input_cache[spec.shape]
        size = max(self.settings.batch_sizes)
        arrays = []
        for item in self.items[: 4 * size]:
            loaded = load_item(item, spec)
            if loaded.array is not None:
                arrays.append(loaded.array)
            if len(arrays) == size:
                break
        if arrays:
            reps = -(-size // len(arrays))
            found = "images", np.stack((arrays * reps)[:size])
        else:
            rng = np.random.default_rng(0)
            found = "synthetic", rng.integers(0, 256, (size, *spec.shape), dtype=np.uint8)
        self._input_cache[spec.shape] = found
        return found

    # --------------------------------------------------------------- model only
    def _model_only(
        self,
        classifiers: list[tuple[str, Classifier]],
        threads: int | None,
        batch: int,
        keras_model: Any,
    ) -> None:
        runners: list[tuple[dict[str, Any], Callable[[], object]]] = []
        for name, classifier in classifiers:
            kind, data = self._inputs(classifier.spec.input)
            x = np.ascontiguousarray(data[:batch])
            record = self._record(name, thread_label(threads), batch, kind)
            runners.append((record, lambda c=classifier, x=x: c.run(x)))
            first = self._warm(runners[-1][1])
            for entry in self.warmup:
                if entry["model"] == name and entry["threads"] == record["threads"]:
                    entry.setdefault("first_run_ms", first)
                    entry.setdefault("first_batch", batch)
        if keras_model is not None and self.keras_info is not None:
            height, width, channels = (int(d) for d in keras_model.inputs[0].shape[1:4])
            color = "gray" if channels == 1 else classifiers[0][1].spec.input.color
            kind, data = self._inputs(InputSpec(height, width, channels, color))
            xf = data[:batch].astype(keras_model.inputs[0].dtype or "float32")
            record = self._record("keras", "tf-default", batch, kind, keras=True)
            predict = keras_model.predict
            runners.append((record, lambda: predict(xf, batch_size=batch, verbose=0)))
            self.keras_info.setdefault("first_run_ms", self._warm(runners[-1][1]))
        mode, total = self.settings.budget
        for share in _chunks(total, self.settings.rounds):
            for record, call in runners:
                time.sleep(_SETTLE_S)  # let the previous runtime's thread pool go idle
                self._measure(record, call, mode, share)

    def _record(
        self, name: str, threads: str, batch: int, kind: str, *, keras: bool = False
    ) -> dict[str, Any]:
        record = {
            "model": name,
            "threads": threads,
            "batch_size": batch,
            "input": kind,
            "keras": keras,
            "samples_ms": [],
        }
        self.records.append(record)
        return record

    def _warm(self, call: Callable[[], object]) -> float:
        """Run once (timed: the first run) then ``warmup`` more times; returns the first ms."""
        started = time.perf_counter()
        call()
        first = (time.perf_counter() - started) * 1e3
        for _ in range(self.settings.warmup):
            call()
        return first

    def _measure(
        self, record: dict[str, Any], call: Callable[[], object], mode: str, share: float
    ) -> None:
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
                self.tick(f"{label}: {len(samples)} runs")

    # --------------------------------------------------------------- end to end
    def _end_to_end(
        self, name: str, classifier: Classifier, threads: int | None, batch: int
    ) -> None:
        label = f"{name} threads {thread_label(threads)} batch {batch}"
        self._stages(name, classifier)
        tally = Tally(STAGES)
        entry: dict[str, Any] = {
            "model": name,
            "threads": thread_label(threads),
            "batch_size": batch,
            "tally": tally,
            "seconds": 0.0,
        }
        self.pipelines.append(entry)
        pipeline = Pipeline(classifier, batch_size=batch)
        entry["workers"] = pipeline.workers
        started = time.perf_counter()
        try:
            with OtherLoad(entry):
                self._consume(pipeline, tally, entry, label, started)
        finally:
            entry["seconds"] = time.perf_counter() - started
        if tally.ok == 0:
            raise BenchError(
                f"{self.images}: no file could be decoded as an image "
                f"(first error: {tally.failed[0][1] if tally.failed else 'none'})"
            )

    def _consume(
        self, pipeline: Pipeline, tally: Tally, entry: dict[str, Any], label: str, started: float
    ) -> None:
        limit = self.settings.duration
        batch = pipeline.batch_size
        for prediction in pipeline.run(self.items):
            tally.add(prediction.source, prediction.error, prediction.timings)
            entry["seconds"] = time.perf_counter() - started
            if tally.total % max(batch, 16) == 0:
                self.tick(f"pipeline {label}: {tally.total}/{len(self.items)} images")
            if limit is not None and entry["seconds"] >= limit and tally.total % batch == 0:
                break

    def _stages(self, name: str, classifier: Classifier) -> None:
        """Decode / preprocess / postprocess one image at a time on one core (once per model)."""
        if any(entry["model"] == name for entry in self.stages):
            return
        entry: dict[str, Any] = {"model": name, "decode": [], "preprocess": [], "postprocess": []}
        self.stages.append(entry)
        spec = classifier.spec.input
        # One core: `edgecnn bench` keeps OpenCV single-threaded for the whole run (the CLI
        # owns the process); a library caller decides that for its own process.
        for item in self.items[:3]:  # warm-up: decoder libraries, allocator
            load_item(item, spec)
        with OtherLoad(entry):
            self._one_core(name, classifier, entry)

    def _one_core(self, name: str, classifier: Classifier, entry: dict[str, Any]) -> None:
        spec = classifier.spec.input
        for i, item in enumerate(self.items[:STAGE_SAMPLE]):
            loaded = load_item(item, spec)
            if loaded.array is None:
                continue
            entry["decode"].append(loaded.timings["decode"])
            entry["preprocess"].append(loaded.timings["preprocess"])
            row = np.full(classifier.spec.num_classes, 1.0 / classifier.spec.num_classes)
            t0 = time.perf_counter()
            classifier.top(row, 1)
            entry["postprocess"].append((time.perf_counter() - t0) * 1e3)
            self.tick(f"stages {name}: {i + 1} images decoded on one core")

    # --------------------------------------------------------------- keras
    def _load_keras(self) -> Any:
        from edgecnn.errors import ExportError
        from edgecnn.export.keras_model import load_keras

        keras = _deps.keras()
        self.progress(f"loading {self.keras_path} in Keras")
        started = time.perf_counter()
        try:
            model = load_keras(self.keras_path, unsafe=self.unsafe)
        except ExportError as exc:
            raise BenchError(str(exc)) from exc
        self.keras_info = {
            "path": str(self.keras_path),
            "sha256": sha256(self.keras_path),
            "keras": keras.__version__,
            "load_s": time.perf_counter() - started,
            "input": [d for d in model.inputs[0].shape[1:]],
        }
        return model

    def _keras_tutorial(self, model: Any) -> None:
        """The tutorials' pipeline: ``image_dataset_from_directory`` + ``model.predict``."""
        keras = _deps.keras()
        height, width, channels = (int(d) for d in model.inputs[0].shape[1:4])
        fit = self.model_info[0]["fit"] if self.model_info else "crop"
        self.progress("Keras tutorial pipeline: image_dataset_from_directory + predict")
        load: dict[str, Any] = {}
        started = time.perf_counter()
        with OtherLoad(load):
            dataset = keras.utils.image_dataset_from_directory(
                self.images,
                labels=None,
                image_size=(height, width),
                crop_to_aspect_ratio=fit == "crop",
                color_mode="grayscale" if channels == 1 else "rgb",
                batch_size=16,
                shuffle=False,
                verbose=False,
            )
            probabilities = model.predict(dataset, verbose=0)
        seconds = time.perf_counter() - started
        self.keras_pipeline = {
            "images": len(probabilities),
            "seconds": seconds,
            "images_per_second": len(probabilities) / seconds,
            "batch_size": 16,
            "crop_to_aspect_ratio": fit == "crop",
            "others_cpu_share": others_share(load),
        }

    # --------------------------------------------------------------- report
    def report(self) -> dict[str, Any]:
        """The JSON-ready report of everything measured so far."""
        models = self._model_rows()
        env = dict(self.environment)
        env["provider"] = self.model_info[0]["provider"] if self.model_info else None
        report: dict[str, Any] = {
            "schema": SCHEMA,
            "interrupted": self.interrupted,
            "environment": env,
            "models": self.model_info,
            "settings": {
                "batch_sizes": list(self.settings.batch_sizes),
                "threads": [thread_label(t) for t in self.settings.threads],
                "warmup": self.settings.warmup,
                "iterations": self.settings.iterations,
                "duration_s": self.settings.budget[1]
                if self.settings.budget[0] == "duration"
                else None,
                "provider_requested": self.settings.provider,
                "interleaved_rounds": self.settings.rounds,
            },
            "warmup": self.warmup,
            "model_only": models,
            "end_to_end": self._pipeline_rows(models),
            "keras": self.keras_info,
            "unreadable": self._unreadable(),
        }
        if self.keras_pipeline is not None:
            report["keras_pipeline"] = dict(self.keras_pipeline)
            rows = [r for r in report["end_to_end"] if r["images_per_second"] > 0]
            for row in rows:
                row["speedup_vs_keras_pipeline"] = (
                    row["images_per_second"] / self.keras_pipeline["images_per_second"]
                )
        return report

    def _model_rows(self) -> list[dict[str, Any]]:
        rows = []
        for record in self.records:
            samples = record["samples_ms"]
            if not samples:
                continue
            total_s = sum(samples) / 1e3
            images = record["batch_size"] * len(samples)
            rows.append(
                {key: record[key] for key in ("model", "threads", "batch_size", "input", "keras")}
                | {
                    "latency_ms": latency_stats(samples),
                    "per_image_ms": total_s * 1e3 / images,
                    "images_per_second": images / total_s if total_s > 0 else 0.0,
                    "samples_ms": list(samples),
                    "others_cpu_share": others_share(record),
                }
            )
        for row in (r for r in rows if not r["keras"]):
            peers = [
                r["images_per_second"]
                for r in rows
                if not r["keras"]
                and (r["batch_size"], r["threads"]) == (row["batch_size"], row["threads"])
            ]
            if len(self.providers) > 1 and max(peers) > 0:
                row["ratio_to_fastest"] = row["images_per_second"] / max(peers)
            if row["model"] in self._agreement:
                row["top1_agreement"] = self._agreement[row["model"]]
        first = self.model_info[0]["name"] if self.model_info else None
        for row in (r for r in rows if not r["keras"]):
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

    def _unreadable(self) -> list[dict[str, str]]:
        """The inputs the end-to-end runs could not decode (a FIFO, a broken file), each once:
        named in the report, not dropped silently."""
        failed = {src: err for entry in self.pipelines for src, err in entry["tally"].failed}
        return [{"source": source, "error": error} for source, error in failed.items()]

    def _pipeline_rows(self, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = []
        cores = available_cores()
        for entry in self.pipelines:
            tally: Tally = entry["tally"]
            if tally.total == 0:
                continue
            summary = tally.summary(entry["seconds"])
            stages = next(s for s in self.stages if s["model"] == entry["model"])
            one_core = {
                k: latency_stats(stages[k]) for k in ("decode", "preprocess", "postprocess")
            }
            inference = next(
                (
                    m
                    for m in models
                    if m["model"] == entry["model"]
                    and m["threads"] == entry["threads"]
                    and m["batch_size"] == entry["batch_size"]
                ),
                None,
            )
            row: dict[str, Any] = {
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
                "one_core_ms": one_core,
                "inference_per_image_ms": inference["per_image_ms"] if inference else None,
                "others_cpu_share": others_share(entry),
                "one_core_others_cpu_share": others_share(stages),
            }
            row.update(machine_limit(one_core, row["inference_per_image_ms"], cores))
            if row.get("limit_images_per_second"):
                row["fraction_of_limit"] = row["images_per_second"] / row["limit_images_per_second"]
            row["verdict"] = verdict(row, self.items)
            rows.append(row)
        return rows

    def interrupt(self) -> dict[str, Any]:
        """Mark the run interrupted and return what was measured so far."""
        self.interrupted = True
        return self.report()


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


def _read_all(items: Sequence[Item]) -> None:
    """Read every file once so that no configuration pays for the cold disk cache alone."""
    for item in items:
        try:  # a FIFO or a link to /dev/zero is neither waited for nor read without end
            with open_regular(item.path or "", MAX_FILE_BYTES) as fh:
                while fh.read(1 << 22):
                    pass
        except (UnusableFile, OSError):
            pass  # reported by the pipeline as that input's error


def _is_regular(path: str | None) -> bool:
    try:
        check_regular(path or "", MAX_FILE_BYTES)
    except UnusableFile:
        return False
    return True


def _is_jpeg(path: str | None) -> bool:
    return bool(path) and str(path).lower().endswith((".jpg", ".jpeg"))
