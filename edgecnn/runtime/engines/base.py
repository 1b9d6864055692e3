"""The one small interface every inference engine offers to :class:`Classifier`.

An engine opens one ``.onnx`` file, runs a batch fed in the model's own input layout (for
edgecnn models: uint8 NHWC) and returns the first output as float32, and says what really runs
(``provider`` and :meth:`Engine.describe`). Which engine to open is decided by
:mod:`edgecnn.runtime.engines.registry`; the engines themselves never fall back.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecnn.errors import ModelError
from edgecnn.model_files import keras_not_onnx, model_kind
from edgecnn.user_files import MODEL_LIMIT, UnusableFile, check_regular

#: Engine names accepted by ``--provider`` / ``Classifier.load(provider=...)``, besides "auto".
ENGINES = ("cpu", "openvino", "cuda", "tensorrt")
PROVIDERS = ("auto", *ENGINES)
#: Engine precisions: ``f32`` gives the model's own numbers; ``bf16`` / ``f16`` are opt-in
#: speed-ups that may change top-1 on images with small margins.
PRECISIONS = ("f32", "bf16", "f16")

ModelSource = str | os.PathLike | bytes


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output: its name, declared shape (symbolic dims as str or None) and
    type in onnxruntime's spelling (``tensor(uint8)``, ``tensor(float)``)."""

    name: str
    shape: list[int | str | None]
    type: str


@dataclass(frozen=True)
class EngineOptions:
    """How to open an engine. Every field has a sensible default per engine.

    ``threads``: intra-op threads (None: the engine's default, one per core).
    ``spinning``: onnxruntime CPU only; idle threads busy-wait between runs (fastest for a
    model that runs back to back, costly when decode workers share the cores). None: on.
    ``precision``: ``f32`` unless asked (OpenVINO picks bf16 on CPUs that have it otherwise);
    which engine runs which: :data:`edgecnn.runtime.engines.registry.ENGINE_PRECISIONS`.
    ``mode``: OpenVINO ``latency`` (one request, all cores on one batch) or ``throughput``
    (several asynchronous requests, the batch split between them).
    ``cache_dir``: compiled models (OpenVINO) and engines / timing caches (TensorRT).
    ``max_batch``: TensorRT's optimization profile upper bound.
    """

    threads: int | None = None
    spinning: bool | None = None
    precision: str = "f32"
    mode: str = "latency"
    cache_dir: Path | None = None
    max_batch: int = 32
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, not {self.threads}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.mode not in ("latency", "throughput"):
            raise ValueError(f"mode must be 'latency' or 'throughput', not {self.mode!r}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, not {self.max_batch}")


class Engine(ABC):
    """An opened model on one backend. ``run`` is safe to call from several threads."""

    #: the engine's name in :data:`ENGINES`
    name: str = ""
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    #: the model's ``metadata_props`` (key -> string)
    metadata: dict[str, str]

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch (the model's input layout and type); the first output, as returned."""

    @property
    @abstractmethod
    def provider(self) -> str:
        """What really runs, short: ``CPUExecutionProvider``, ``OpenVINO:CPU``, ..."""

    @abstractmethod
    def describe(self) -> str:
        """What really runs, in words: backend, device, threads / requests, precision."""

    def close(self) -> None:  # noqa: B027 - optional for engines holding nothing to free
        """Free what the engine holds (sessions, compiled models)."""


def warm_up(
    engine: Engine, batch_sizes: Sequence[int] = (1,), runs: int = 2, *, strict: bool = False
) -> None:
    """Run black images ``runs`` times at each of ``batch_sizes`` (a model with a fixed batch:
    its own) so first-run costs (allocations, lazy kernels, a thread pool starting, TensorRT
    building its engine for a shape) are paid at load, not by the first real batch.

    Skipped for inputs without a fixed image size or of another type than uint8 / float32.
    A model that fails here reports its error on the real batch, with the image named, unless
    ``strict`` (the GPU engines: a failure there is the engine's, raised at load).
    """
    if len(engine.inputs) != 1 or not engine.inputs[0].shape:
        return
    info = engine.inputs[0]
    first, rest = info.shape[0], info.shape[1:]
    dtype = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32}.get(info.type)
    if dtype is None or not all(isinstance(d, int) and d > 0 for d in rest):
        return
    fixed = isinstance(first, int) and first > 0
    sizes = [first] if fixed else list(dict.fromkeys(batch_sizes))
    try:
        for size in sizes:
            batch = np.zeros([size, *rest], dtype)
            for _ in range(runs):
                engine.run(batch)
    except Exception:  # the real batch reports it, with the image named
        if strict:
            raise


def model_name(model: ModelSource) -> str:
    """How a model source is named in messages."""
    return "<bytes>" if isinstance(model, bytes) else os.fsdecode(model)


def check_model_file(model: ModelSource) -> str | bytes:
    """The model as a str path (checked to be a regular file within the size bound) or its
    bytes; ModelError otherwise."""
    if isinstance(model, bytes):
        return model
    name = os.fsdecode(model)
    if os.path.isdir(name):
        hint = keras_not_onnx(name, model_kind(name))
        raise ModelError(hint or f"{name}: is a directory, not an .onnx model file")
    try:  # a FIFO or /dev/zero named as the model would hang or fill memory in the backend
        check_regular(name, MODEL_LIMIT)
    except UnusableFile as exc:
        missing = exc.reason.startswith("no such file")
        raise ModelError(f"{exc.path}: {'no such model file' if missing else exc.reason}") from None
    return name


def unusable_model(model: ModelSource, exc: BaseException) -> ModelError:
    """The error for a file a backend could not read: a Keras model named as such (with the
    export command), else the backend's first line."""
    name = model_name(model)
    if not isinstance(model, bytes) and (hint := keras_not_onnx(name, model_kind(name))):
        return ModelError(hint)
    return ModelError(f"{name}: not a usable ONNX model ({first_line(exc)})")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (backends raise pages of text)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def default_cache_dir() -> Path:
    """Where compiled models and engines are kept: ``$EDGECNN_CACHE`` or ~/.cache/edgecnn."""
    root = os.environ.get("EDGECNN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgecnn"
    )
    return Path(root)
