"""Benchmarks users can trust: :class:`Benchmark` runs the models (engines side by side) through
every batch size x thread count and returns one JSON-ready report.

Model-only mode (:mod:`edgecnn.tools.model_timing`) runs each model on uint8 batches (synthetic,
or real images when a folder is given) after a warm-up reported on its own (session creation,
first run); several models are measured interleaved, so their ratio stays honest.

End-to-end mode (an image folder, :mod:`edgecnn.tools.pipeline_timing`) measures the stages one
image at a time on one core and the whole pipeline exactly as ``edgecnn classify`` runs it, and
sets it against this machine's limit (:mod:`edgecnn.tools.pipeline_limit`).

``keras`` (optional, :mod:`edgecnn.tools.keras_baseline`): the same network in Keras ``predict``
and the tutorials' pipeline in the same run; only that path imports TensorFlow.
:mod:`edgecnn.tools.bench_report` renders the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.classify.input_discovery import Item, scan
from edgecnn.runtime.batch_pipeline import load_item
from edgecnn.runtime.classifier import Classifier, Foreign
from edgecnn.spec import InputSpec
from edgecnn.tools import keras_baseline, model_timing, pipeline_timing
from edgecnn.tools.bench_settings import BenchError, Settings, thread_label
from edgecnn.tools.machine import environment, sha256

__all__ = [
    "SCHEMA",
    "Benchmark",
    "describe_model",
    "model_names",
    "preprocessing",
    "throttled",
    "use_interpolation",
]

#: Version of the JSON report layout.
SCHEMA = 1

Progress = Callable[[str], None]
#: Most progress updates per second: a terminal write per run of a sub-millisecond model would
#: compete with the measured cores.
PROGRESS_RATE = 5.0


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


def describe_model(
    classifier: Classifier,
    name: str,
    *,
    recorded_interpolation: str | None = None,
    foreign: Foreign | None = None,
) -> dict[str, Any]:
    """The report's facts about one model, with the provider its session really uses.

    ``interpolation`` is the resize this run's preprocessing used, ``model_interpolation`` the
    one the model records (``recorded_interpolation``; None: the same): when they differ, the
    results are not those of the model's own preprocessing. ``preprocessing``: all of it and its
    ``source``: the model's metadata, or ``foreign`` (the description given for a model without
    metadata; its normalization and softmax too)."""
    spec = classifier.spec
    used = spec.input.interpolation
    return {
        "name": name,
        "path": classifier.path,
        "sha256": sha256(classifier.path),
        "precision": spec.precision,
        "architecture": spec.architecture,
        "input": list(spec.input.shape),
        "fit": spec.input.fit,
        "interpolation": used,
        "model_interpolation": recorded_interpolation or used,
        "classes": spec.num_classes,
        "provider": classifier.provider,
        "preprocessing": preprocessing(spec.input, foreign),
    }


def preprocessing(spec: InputSpec, foreign: Foreign | None) -> dict[str, Any]:
    """The report's record of a model's preprocessing (see :func:`describe_model`)."""
    record: dict[str, Any] = {
        "source": "metadata" if foreign is None else "foreign",
        "color": spec.color,
        "fit": spec.fit,
        "interpolation": spec.interpolation,
        "anchor": spec.anchor,
        "pad_value": spec.pad_value,
    }
    if foreign is not None:
        record.update(
            scale=foreign.scale,
            mean=list(foreign.mean),
            std=list(foreign.std),
            logits=foreign.logits,
        )
    return record


def use_interpolation(classifier: Classifier, interpolation: str | None) -> str:
    """Make ``classifier`` preprocess with ``interpolation`` (None: its model's own); returns
    the interpolation its model records."""
    spec = classifier.spec
    recorded = spec.input.interpolation
    if interpolation is not None and interpolation != recorded:
        classifier.spec = replace(spec, input=replace(spec.input, interpolation=interpolation))
    return recorded


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


def _load(
    path: str | None, provider: str, threads: int | None, foreign: Foreign | None
) -> tuple[Classifier, float]:
    """Load (for TensorRT: build or load its engine, warm-up included), timed."""
    started = time.perf_counter()
    classifier = Classifier.load(path, provider=provider, threads=threads, foreign=foreign)
    return classifier, time.perf_counter() - started


def _check_batches(classifier: Classifier, batch_sizes: Sequence[int]) -> None:
    fixed = classifier.fixed_batch
    wrong = [b for b in batch_sizes if fixed is not None and b != fixed]
    if wrong:
        raise BenchError(
            f"{classifier.path}: the model's batch dimension is fixed to {fixed}; batch size "
            f"{', '.join(map(str, wrong))} cannot run (use `batch_sizes` {fixed})"
        )


def _scan_images(folder: Path) -> list[Item]:
    if not folder.exists():
        raise BenchError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise BenchError(f"{folder}: `images` needs a folder of images")
    items = [item for item in scan([folder], recursive=True).items if item.path]
    if not items:
        raise BenchError(f"{folder}: the image folder is empty")
    return items


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
        foreign: Foreign | None = None,
    ) -> None:
        self.models = list(models) or [None]
        self.settings = settings
        #: How to run models without edgecnn metadata: every model of the run is loaded with it
        #: (a model with metadata is then refused, as :meth:`Classifier.load` does).
        self.foreign = foreign
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
        #: The uint8 batches the model-only runs use, by input spec (size, colour order, fit,
        #: interpolation: everything that changes the prepared pixels, so two models of one
        #: shape but different preprocessing never share a batch): ("synthetic" | "images", a
        #: batch as large as the largest batch size).
        self.inputs: dict[InputSpec, tuple[str, np.ndarray]] = {}
        self._agreement: dict[str, float] = {}
        #: engines measured side by side (``all`` resolved once: it opens every backend)
        self.providers = settings.providers
        self._references: dict[str | None, np.ndarray] = {}

    # --------------------------------------------------------------- driver
    def run(self) -> dict[str, Any]:
        """Measure everything asked for; returns :meth:`report`."""
        if self.images is not None:
            self.items = _scan_images(self.images)
            # every pass then reads from the page cache, like the next
            pipeline_timing.read_all(self.items)
        keras_model = None if self.keras_path is None else self._load_keras(self.keras_path)
        for threads in self.settings.threads:
            classifiers = self._load_all(threads)
            keras_here = keras_model if threads == self.settings.threads[-1] else None
            for batch in self.settings.batch_sizes:
                self._model_only(classifiers, threads, batch, keras_here)
            if self.items:
                for name, classifier in classifiers:
                    for batch in self.settings.batch_sizes:
                        self._end_to_end(name, classifier, threads, batch)
        if keras_model is not None and self.images is not None:
            self._keras_tutorial(keras_model, self.images)
        return self.report()

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
            classifier, seconds = _load(file, provider, threads, self.foreign)
            recorded = use_interpolation(classifier, self.settings.interpolation)
            _check_batches(classifier, self.settings.batch_sizes)
            if len(providers) > 1 and not any(m["name"] == name for m in self.model_info):
                self._agreement[name] = self._top1_agreement(file, classifier)
            if not any(m["name"] == name for m in self.model_info):
                info = describe_model(
                    classifier, name, recorded_interpolation=recorded, foreign=self.foreign
                )
                self.model_info.append(info)
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
            reference = Classifier.load(path, provider="cpu", foreign=self.foreign)
            self._references[path] = reference.run(data).argmax(1)
        return float((classifier.run(data).argmax(1) == self._references[path]).mean())

    def _inputs(self, spec: InputSpec) -> tuple[str, np.ndarray]:
        """("synthetic" | "images", a uint8 batch as large as the largest batch size)."""
        if spec in self.inputs:
            return self.inputs[spec]
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
        self.inputs[spec] = found
        return found

    # --------------------------------------------------------------- steps
    def _model_only(
        self,
        classifiers: list[tuple[str, Classifier]],
        threads: int | None,
        batch: int,
        keras_model: Any,
    ) -> None:
        """Every model (and Keras ``predict``) at this batch size, interleaved."""
        runners: list[tuple[dict[str, Any], model_timing.Call]] = []
        for name, classifier in classifiers:
            kind, data = self._inputs(classifier.spec.input)
            x = np.ascontiguousarray(data[:batch])
            record = self._record(name, thread_label(threads), batch, kind)
            runners.append((record, lambda c=classifier, x=x: c.run(x)))
            first = model_timing.warm(runners[-1][1], self.settings.warmup)
            for entry in self.warmup:
                if entry["model"] == name and entry["threads"] == thread_label(threads):
                    entry.setdefault("first_run_ms", first)
                    entry.setdefault("first_batch", batch)
        if keras_model is not None and self.keras_info is not None:
            height, width, channels = (int(d) for d in keras_model.inputs[0].shape[1:4])
            color = "gray" if channels == 1 else classifiers[0][1].spec.input.color
            interpolation = self._keras_interpolation()
            spec = InputSpec(height, width, channels, color, interpolation=interpolation)
            kind, data = self._inputs(spec)
            xf = data[:batch].astype(keras_model.inputs[0].dtype or "float32")
            record = self._record("keras", "tf-default", batch, kind, keras=True)
            predict = keras_model.predict
            runners.append((record, lambda: predict(xf, batch_size=batch, verbose=0)))
            first = model_timing.warm(runners[-1][1], self.settings.warmup)
            self.keras_info.setdefault("first_run_ms", first)
        model_timing.time_interleaved(
            runners, self.settings.budget, self.settings.rounds, self.tick
        )

    def _record(
        self, name: str, threads: str, batch: int, kind: str, *, keras: bool = False
    ) -> dict[str, Any]:
        record = model_timing.new_record(name, threads, batch, kind, keras=keras)
        self.records.append(record)
        return record

    def _end_to_end(
        self, name: str, classifier: Classifier, threads: int | None, batch: int
    ) -> None:
        """The stages on one core (once per model), then the whole pipeline."""
        if not any(entry["model"] == name for entry in self.stages):
            self.stages.append(pipeline_timing.new_stages(name))
            pipeline_timing.time_stages(self.stages[-1], classifier, self.items, self.tick)
        entry = pipeline_timing.new_pipeline_entry(name, thread_label(threads), batch)
        self.pipelines.append(entry)
        pipeline_timing.time_pipeline(
            entry, classifier, self.items, self.settings.duration, self.tick
        )
        tally = entry["tally"]
        if tally.ok == 0:
            raise BenchError(
                f"{self.images}: no file could be decoded as an image "
                f"(first error: {tally.failed[0][1] if tally.failed else 'none'})"
            )

    def _load_keras(self, path: Path) -> Any:
        self.progress(f"loading {path} in Keras")
        model, self.keras_info = keras_baseline.load_keras_model(path, unsafe=self.unsafe)
        return model

    def _keras_tutorial(self, model: Any, images: Path) -> None:
        """The tutorials' pipeline on the image folder, unless an input is not a regular file."""
        special = [i.path for i in self.items if not pipeline_timing.is_regular(i.path)]
        if special:  # TensorFlow's reader would wait on a FIFO or read /dev/zero forever
            self.progress(
                f"Keras tutorial pipeline skipped: {len(special)} input(s) are not regular "
                f"files (e.g. {special[0]})"
            )
            return
        fit = self.model_info[0]["fit"] if self.model_info else "crop"
        self.progress("Keras tutorial pipeline: image_dataset_from_directory + predict")
        self.keras_pipeline = keras_baseline.time_tutorial_pipeline(
            model, images, fit, self._keras_interpolation()
        )

    def _keras_interpolation(self) -> str:
        """The resize of the Keras baseline's inputs: the run's --interpolation override, else
        the described (metadata-less) models' interpolation, else the tutorials' default."""
        if self.settings.interpolation is not None:
            return self.settings.interpolation
        if self.foreign is not None:
            return self.foreign.interpolation
        return keras_baseline.TUTORIAL_INTERPOLATION

    # --------------------------------------------------------------- report
    def report(self) -> dict[str, Any]:
        """The JSON-ready report of everything measured so far."""
        models = model_timing.model_rows(
            self.records,
            engines_side_by_side=len(self.providers) > 1,
            agreement=self._agreement,
            first=self.model_info[0]["name"] if self.model_info else None,
        )
        env = dict(self.environment)
        env["provider"] = self.model_info[0]["provider"] if self.model_info else None
        report: dict[str, Any] = {
            "schema": SCHEMA,
            "interrupted": self.interrupted,
            "environment": env,
            "models": self.model_info,
            "settings": self._settings_row(),
            "warmup": self.warmup,
            "model_only": models,
            "end_to_end": pipeline_timing.pipeline_rows(
                self.pipelines, self.stages, models, self.items
            ),
            "keras": self.keras_info,
            "unreadable": pipeline_timing.unreadable(self.pipelines),
        }
        if self.keras_pipeline is not None:
            report["keras_pipeline"] = dict(self.keras_pipeline)
            rows = [r for r in report["end_to_end"] if r["images_per_second"] > 0]
            for row in rows:
                row["speedup_vs_keras_pipeline"] = (
                    row["images_per_second"] / self.keras_pipeline["images_per_second"]
                )
        return report

    def _settings_row(self) -> dict[str, Any]:
        settings = self.settings
        mode, budget = settings.budget
        return {
            "batch_sizes": list(settings.batch_sizes),
            "threads": [thread_label(t) for t in settings.threads],
            "warmup": settings.warmup,
            "iterations": settings.iterations,
            "duration_s": budget if mode == "duration" else None,
            "provider_requested": settings.provider,
            "interleaved_rounds": settings.rounds,
            "interpolation": settings.interpolation,
        }

    def interrupt(self) -> dict[str, Any]:
        """Mark the run interrupted and return what was measured so far."""
        self.interrupted = True
        return self.report()
