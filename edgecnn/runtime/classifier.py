"""Classifier: an inference engine plus the ModelSpec it carries; the library's main object.

A Classifier holds no mutable state after loading (every engine's ``run`` is thread-safe), so
one instance can be shared by any number of threads.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from edgecnn.errors import ImageError, ModelError, SourceError
from edgecnn.normalization import Normalization
from edgecnn.preprocess import MAX_PIXELS, ImageInput, decode, prepare
from edgecnn.runtime.batch_pipeline import Pipeline, load_one
from edgecnn.runtime.engines.base import Engine, EngineOptions
from edgecnn.runtime.engines.registry import Choice, open_engine
from edgecnn.runtime.prediction import Prediction, softmax
from edgecnn.runtime.providers import CudaStatus, cuda_status
from edgecnn.spec import METADATA_KEY, InputSpec, ModelSpec
from edgecnn.tools.machine import int8_target_problem

DEFAULT_MODEL_CPU = "shapes-int8.onnx"
DEFAULT_MODEL_GPU = "shapes-fp32.onnx"
FOREIGN_FLAGS = "`labels` FILE `input_size` HxW [`color` rgb|bgr|gray] [`fit` crop|stretch|pad]"

#: A foreign model's output row is taken as probabilities when no value is below -tolerance
#: and the row sums to 1 within it (fp16 / int8 models round a little).
PROBABILITY_TOLERANCE = 1e-2

_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
_OUTPUT_TYPES = (*_FLOAT_TYPES, "tensor(double)")


def default_model_path(provider: str = "auto", status: CudaStatus | None = None) -> Path:
    """The bundled shapes model: int8 for CPUs (onnxruntime, OpenVINO), fp32 where CUDA runs."""
    use_gpu = provider in ("auto", "cuda", "tensorrt") and (status or cuda_status()).loadable
    name = DEFAULT_MODEL_GPU if use_gpu else DEFAULT_MODEL_CPU
    path = Path(str(resources.files("edgecnn") / "assets" / name))
    if not path.exists():
        raise ModelError(f"the bundled model {name} is missing from this installation ({path})")
    return path


@dataclass(frozen=True)
class Foreign:
    """How to run an ONNX model that carries no edgecnn metadata (exported elsewhere).

    ``scale`` / ``mean`` / ``std`` are applied as ``(pixel * scale - mean) / std`` for models
    with float input; ``logits`` adds a softmax to a model that does not end in one.
    """

    labels: Sequence[str]
    input_size: tuple[int, int]
    color: str = "rgb"
    fit: str = "crop"
    interpolation: str = "bilinear"
    anchor: str = "center"
    pad_value: int = 0
    scale: float | None = None
    mean: Sequence[float] = (0.0,)
    std: Sequence[float] = (1.0,)
    logits: bool = False

    def normalization(self) -> Normalization:
        """The pixel normalization (the same type ``eval`` and ``export`` use)."""
        return Normalization(
            1.0 if self.scale is None else float(self.scale), tuple(self.mean), tuple(self.std)
        )


def check_foreign(foreign: Foreign, channels: int) -> None:
    """Refuse normalization values that cannot apply to the model's input (a mean or std with
    neither 1 nor ``channels`` values, a zero std) when the model loads, not mid-run."""
    foreign.normalization().check_channels(channels)


class Classifier:
    """Classify images with an edgecnn ONNX model. Build with :meth:`load`."""

    def __init__(
        self,
        engine: Engine,
        spec: ModelSpec,
        *,
        path: str,
        choice: Choice | None = None,
        foreign: Foreign | None = None,
    ) -> None:
        self.engine = engine
        self.spec = spec
        self.path = path
        #: Why the engine was chosen (``auto``'s rule, or "asked for").
        self.choice_reason = choice.reason if choice else "given"
        #: Something worth printing about the choice (a GPU that is there but not used).
        self.provider_note = choice.note if choice else None
        self._foreign = foreign
        inputs = engine.inputs
        outputs = engine.outputs
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelError(
                f"{path}: expected one image input and an output, found "
                f"{len(inputs)} input(s) and {len(outputs)} output(s)"
            )
        self._input = inputs[0]
        self._output = outputs[0]
        if self._output.type not in _OUTPUT_TYPES:
            raise ModelError(
                f"{path}: output {self._output.name!r} is {self._output.type}, "
                "not float scores (edgecnn reads the first output as class probabilities)"
            )
        shape = list(self._input.shape)
        if len(shape) != 4:
            raise ModelError(f"{path}: input {self._input.name!r} has shape {shape}, not 4-D")
        self._nchw = foreign is not None and shape[1] in (1, 3) and shape[3] not in (1, 3)
        self._fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self._check_input(shape)
        #: What run() compares each batch with, made once (it runs per batch, between engine runs)
        self._image_shape = spec.input.shape
        self._answer_shape = (spec.num_classes,)
        #: The engine's output is the answer as it comes (no padding to a fixed batch, no
        #: foreign input layout or logits to convert): run() only checks its shape.
        self._direct = self._fixed_batch is None and foreign is None
        width = outputs[0].shape[-1] if outputs[0].shape else None
        if isinstance(width, int) and width != spec.num_classes:
            raise ModelError(
                f"{path}: output {self._output.name!r} has {width} classes but the model has "
                f"{spec.num_classes} labels"
            )

    # ----------------------------------------------------------------- loading
    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        provider: str = "auto",
        threads: int | None = None,
        *,
        foreign: Foreign | None = None,
        spinning: bool | None = None,
        precision: str = "f32",
        options: EngineOptions | None = None,
    ) -> Classifier:
        """Open an edgecnn ``.onnx`` model (None: the bundled default) on ``provider``.

        ``provider``: "auto" (the fastest engine here by the documented rules, see
        :mod:`edgecnn.runtime.engines.registry`; :attr:`choice_reason` says why), or one of
        "cpu", "openvino", "cuda", "tensorrt" (fails with the reason instead of falling back).
        ``threads``: intra-op threads. ``spinning``: onnxruntime CPU threads busy-wait between
        runs (None: on; pass False when decode threads share the cores, as ``classify`` does).
        ``precision``: "f32" (exact), or "bf16" / "f16": "auto" then runs OpenVINO at that
        precision; an engine that cannot run it raises ProviderError (never runs f32 instead).
        ``foreign`` describes a model exported elsewhere that carries no edgecnn metadata.
        """
        if options is None:
            options = EngineOptions(threads=threads, spinning=spinning, precision=precision)
        status = cuda_status() if provider in ("auto", "cuda", "tensorrt") else None
        model_path = default_model_path(provider, status) if path is None else Path(path)
        engine, choice = open_engine(model_path, provider, options)
        name = os.fsdecode(model_path)
        meta = engine.metadata
        if METADATA_KEY in meta:
            if foreign is not None:
                raise ModelError(
                    f"{name} carries its own edgecnn metadata (labels, input spec); "
                    f"{FOREIGN_FLAGS} are only for models exported elsewhere"
                )
            spec = ModelSpec.from_json(meta[METADATA_KEY], f"{name}: edgecnn metadata")
        elif foreign is None:
            raise ModelError(
                f"{name} carries no edgecnn metadata (exported elsewhere?); run it with "
                f"{FOREIGN_FLAGS}, or re-export it with `edgecnn export`"
            )
        else:
            check_foreign(foreign, 1 if foreign.color == "gray" else 3)
            spec = ModelSpec(
                labels=tuple(foreign.labels),
                input=InputSpec(
                    height=foreign.input_size[0],
                    width=foreign.input_size[1],
                    channels=1 if foreign.color == "gray" else 3,
                    color=foreign.color,
                    fit=foreign.fit,
                    interpolation=foreign.interpolation,
                    anchor=foreign.anchor,
                    pad_value=foreign.pad_value,
                ),
                precision="fp32",
                extra={"foreign": True},
            )
        classifier = cls(engine, spec, path=name, choice=choice, foreign=foreign)
        problem = int8_target_problem(spec.quantization)
        if problem:  # a model exported elsewhere for other CPUs: say so once, at load
            warnings.warn(f"{name}: {problem}", stacklevel=2)
            note = classifier.provider_note
            classifier.provider_note = f"{note}; {problem}" if note else problem
        return classifier

    def _check_input(self, shape: list) -> None:
        dims = shape[2:4] + shape[1:2] if self._nchw else shape[1:4]
        expected = list(self.spec.input.shape)
        for got, want, what in zip(dims, expected, ("height", "width", "channels"), strict=True):
            if isinstance(got, int) and got > 0 and got != want:
                raise ModelError(
                    f"{self.path}: input {self._input.name!r} has {what} {got} but the spec "
                    f"says {want}"
                )
        dtype = self._input.type
        if self._foreign is None and dtype != "tensor(uint8)":
            raise ModelError(
                f"{self.path}: edgecnn models take uint8 images, input "
                f"{self._input.name!r} is {dtype}"
            )
        if self._foreign is not None and dtype != "tensor(uint8)":
            if dtype not in _FLOAT_TYPES:
                raise ModelError(
                    f"{self.path}: input {self._input.name!r} has unsupported type {dtype}"
                )
            if self._foreign.scale is None:
                raise ModelError(
                    f"{self.path}: the model takes {dtype} input; say how pixels are "
                    f"normalized with `scale` (e.g. 1/255), "
                    f"`mean` and `std`"
                )

    # ----------------------------------------------------------------- facts
    @property
    def provider(self) -> str:
        """What actually runs the model, short (``CPUExecutionProvider``, ``OpenVINO:CPU``;
        under ``auto`` one entry per batch-size range)."""
        return self.engine.provider

    def describe_engine(self) -> str:
        """What actually runs the model, in words, and why it was chosen."""
        return f"{self.engine.describe()} ({self.choice_reason})"

    @property
    def input_name(self) -> str:
        """Name of the model's image input (``image`` for edgecnn models)."""
        return self._input.name

    @property
    def input_shape(self) -> list[int | str | None]:
        """The input's declared shape; symbolic dimensions as names (``["batch", 96, ...]``)."""
        return list(self._input.shape)

    @property
    def input_type(self) -> str:
        """The input's onnxruntime type, e.g. ``tensor(uint8)``."""
        return self._input.type

    @property
    def output_name(self) -> str:
        """Name of the output read (``probabilities`` for edgecnn models)."""
        return self._output.name

    @property
    def output_shape(self) -> list[int | str | None]:
        """The output's declared shape."""
        return list(self._output.shape)

    @property
    def output_type(self) -> str:
        """The output's onnxruntime type, e.g. ``tensor(float)``."""
        return self._output.type

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the model's input is fixed to, or None when the batch is symbolic."""
        return self._fixed_batch

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names in output order."""
        return self.spec.labels

    def __repr__(self) -> str:
        return (
            f"Classifier({self.path!r}, labels={len(self.labels)}, "
            f"input={self.spec.input.height}x{self.spec.input.width}, "
            f"precision={self.spec.precision}, provider={self.provider})"
        )

    # ----------------------------------------------------------------- inference
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Model only: uint8 ``[N, H, W, C]`` batch -> float32 ``[N, classes]`` probabilities."""
        batch = np.asarray(batch)
        if batch.ndim == 3:
            batch = batch[np.newaxis]
        if batch.dtype != np.uint8 or batch.shape[1:] != self._image_shape:
            raise ValueError(
                f"expected uint8 images of shape [N, {', '.join(map(str, self._image_shape))}]"
                f", got {batch.dtype} {list(batch.shape)}"
            )
        if self._direct:  # the common case in as few steps as possible: at batch 1 of the
            # bundled model the engine runs ~0.2 ms, and the Python around it runs cache-cold
            out = self.engine.run(batch)
            if (
                type(out) is np.ndarray
                and out.dtype == np.float32
                and out.shape[1:] == self._answer_shape
                and len(out) == len(batch)
            ):
                return out
            return self._checked(out, len(batch))
        if self._fixed_batch is None or len(batch) == self._fixed_batch:
            return self._run_chunk(batch)
        return np.concatenate(
            [
                self._run_padded(batch[i : i + self._fixed_batch])
                for i in range(0, len(batch), self._fixed_batch)
            ]
        )

    def _run_padded(self, chunk: np.ndarray) -> np.ndarray:
        missing = self._fixed_batch - len(chunk)
        if missing:
            chunk = np.concatenate([chunk, np.zeros((missing, *chunk.shape[1:]), chunk.dtype)])
        return self._run_chunk(chunk)[: self._fixed_batch - missing]

    def _run_chunk(self, batch: np.ndarray) -> np.ndarray:
        feed = batch if self._foreign is None else self._adapt(batch)
        out = self._checked(self.engine.run(feed), len(batch))
        if self._foreign is not None and self._foreign.logits:
            out = softmax(out)
        return out

    def _checked(self, output: object, images: int) -> np.ndarray:
        """An engine's output as float32 ``[images, classes]``, or a :class:`ModelError`
        saying what came back instead."""
        out = np.asarray(output, dtype=np.float32)
        rows = out.shape[0] if out.ndim else 0
        if rows != images or out.size != images * self.spec.num_classes:
            raise ModelError(
                f"{self.path}: the model returned output of shape {list(out.shape)} for a batch "
                f"of {images} image(s); expected [{images}, {self.spec.num_classes}] "
                "(a model whose output ignores the batch dimension runs only with batch size 1)"
            )
        return out.reshape(images, -1)

    def _adapt(self, batch: np.ndarray) -> np.ndarray:
        foreign = self._foreign
        data: np.ndarray = batch
        if self._input.type in _FLOAT_TYPES:
            data = foreign.normalization().apply(batch).astype(_FLOAT_TYPES[self._input.type])
        if self._nchw:
            data = np.ascontiguousarray(data.transpose(0, 3, 1, 2))
        return data

    def top(self, probabilities: np.ndarray, k: int = 1) -> tuple[tuple[str, float], ...]:
        """The ``k`` most likely ``(label, probability)`` pairs of one probability row."""
        k = max(1, min(k, self.spec.num_classes))
        order = np.argsort(-probabilities, kind="stable")[:k]
        return tuple((self.spec.labels[i], float(probabilities[i])) for i in order)

    def prepare(self, image: ImageInput, color_order: str = "bgr") -> np.ndarray:
        """Decode and fit one image exactly as the model expects (uint8 ``HxWxC``)."""
        return prepare(decode(image, self.spec.input, color_order=color_order), self.spec.input)

    def predict(self, image: ImageInput, top_k: int = 1, color_order: str = "bgr") -> Prediction:
        """Classify one image: a path, encoded bytes, or a decoded array (``color_order`` of
        its channels). Raises :class:`ImageError` when the image cannot be read."""
        if color_order not in ("bgr", "rgb"):
            raise ValueError(f"color_order must be 'bgr' or 'rgb', not {color_order!r}")
        # one image, without predict_batch's lists, stacking and per-row bookkeeping
        loaded = load_one(image, self.spec.input, color_order)
        if loaded.array is None:
            raise ImageError(loaded.source, loaded.error or "unknown error")
        started = time.perf_counter()
        row = self.run(loaded.array[np.newaxis])[0]
        ran = time.perf_counter()
        problem = self._row_problem(row)
        if problem:
            raise ImageError(loaded.source, problem)
        top = self.top(row, top_k)
        timings = dict(
            loaded.timings,
            inference=(ran - started) * 1e3,
            postprocess=(time.perf_counter() - ran) * 1e3,
        )
        return Prediction(loaded.source, top=top, timings=timings)

    def predict_batch(
        self, images: Sequence[ImageInput], top_k: int = 1, color_order: str = "bgr"
    ) -> list[Prediction]:
        """Classify several images in one inference call; unreadable ones come back as
        predictions with ``ok == False`` and their error, in input order."""
        if color_order not in ("bgr", "rgb"):
            raise ValueError(f"color_order must be 'bgr' or 'rgb', not {color_order!r}")
        loaded = [load_one(image, self.spec.input, color_order) for image in images]
        return self.finish_batch(
            [x.source for x in loaded],
            [x.array for x in loaded],
            [x.error for x in loaded],
            [x.timings for x in loaded],
            top_k,
        )

    def finish_batch(
        self,
        sources: Sequence[str],
        prepared: Sequence[np.ndarray | None],
        errors: Sequence[str | None],
        timings: Sequence[dict[str, float]],
        top_k: int,
    ) -> list[Prediction]:
        """Run inference on the prepared images of one batch and build every prediction."""
        ok = [i for i, array in enumerate(prepared) if array is not None]
        probs = np.empty((0, self.spec.num_classes), np.float32)
        share = 0.0
        if ok:
            t0 = time.perf_counter()
            probs = self.run(np.stack([prepared[i] for i in ok]))
            share = (time.perf_counter() - t0) * 1e3 / len(ok)
        rows = dict(zip(ok, probs, strict=True))
        results = []
        for i, source in enumerate(sources):
            if i not in rows:
                results.append(
                    Prediction(source, error=errors[i] or "unknown error", timings=dict(timings[i]))
                )
                continue
            problem = self._row_problem(rows[i])
            if problem:
                results.append(Prediction(source, error=problem, timings=dict(timings[i])))
                continue
            t0 = time.perf_counter()
            top = self.top(rows[i], top_k)
            stage = dict(timings[i], inference=share, postprocess=(time.perf_counter() - t0) * 1e3)
            results.append(Prediction(source, top=top, timings=stage))
        return results

    def _row_problem(self, row: np.ndarray) -> str | None:
        """Why one output row is no result (NaN / Inf, or not probabilities), or None."""
        if not np.all(np.isfinite(row)):
            return (
                "the model output NaN or infinity for this image (a broken model, or a "
                "normalization that divides by zero)"
            )
        if self._foreign is not None and not self._foreign.logits:
            total, low = float(row.sum()), float(row.min())
            if low < -PROBABILITY_TOLERANCE or abs(total - 1.0) > PROBABILITY_TOLERANCE:
                return (
                    f"the model's outputs are not probabilities (they sum to {total:.4g}, "
                    f"smallest {low:.4g}); if it outputs logits, run it with `logits`"
                )
        return None

    def classify(
        self,
        sources: str | Path | Iterable[str | Path],
        *,
        batch_size: int = 16,
        workers: int | None = None,
        recursive: bool = False,
        top_k: int = 1,
        max_pixels: int = MAX_PIXELS,
    ) -> Iterator[Prediction]:
        """Classify files, folders and glob patterns, yielding predictions in input order as
        they are ready. Decoding runs in ``workers`` threads while the model runs; every input
        yields exactly one prediction (errors included). Images whose header declares more
        than ``max_pixels`` pixels are error rows, refused before decoding."""
        from edgecnn.classify.input_discovery import scan

        sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
        found = scan(sources, recursive=recursive)
        for note in found.notes:  # e.g. sub-folders not read: worth a warning, not an error
            warnings.warn(note, stacklevel=2)
        if not found.items:
            raise SourceError(f"no inputs found in {', '.join(map(os.fsdecode, sources))}")
        pipeline = Pipeline(
            self, batch_size=batch_size, workers=workers, top_k=top_k, max_pixels=max_pixels
        )
        yield from pipeline.run(found.items)
