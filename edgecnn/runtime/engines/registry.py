"""Which engine runs a model: explicit requests, the ``auto`` rules, and what each engine can do.

An explicit engine (``cpu``, ``openvino``, ``cuda``, ``tensorrt``) either opens or raises
:class:`ProviderError` with the reason; it never falls back. ``auto`` follows static rules
measured on this project's machines (``benchmarks/engines_speed.py``) and always says what it
chose and why (:attr:`Choice.reason`):

1. An NVIDIA GPU whose CUDA libraries load: ``cuda`` (TensorRT only when asked: its first
   build of an engine takes minutes).
2. Otherwise, with OpenVINO installed: batches of :data:`SPLIT_BATCH` images or more run on
   OpenVINO THROUGHPUT (the batch split between asynchronous requests: 1.4-2x onnxruntime on
   every CPU model measured); smaller batches (single frames) on onnxruntime CPU for models up
   to :data:`SMALL_MODEL_BYTES` (its per-call overhead is the lowest) and on OpenVINO LATENCY
   for larger ones.
3. Without OpenVINO: onnxruntime CPU, and the reason says what ``edgecnn[openvino]`` would add.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass, replace

import numpy as np

from edgecnn.errors import MissingDependencyError, ProviderError
from edgecnn.runtime.engines.base import (
    ENGINES,
    PROVIDERS,
    Engine,
    EngineOptions,
    ModelSource,
    first_line,
)
from edgecnn.runtime.providers import NO_GPU, cuda_status, nvidia_driver

#: What each engine's ``provider`` says (known before it opens).
PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "openvino": "OpenVINO:CPU",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
#: Batches at least this large go to OpenVINO THROUGHPUT under ``auto``.
SPLIT_BATCH = 4
#: Models up to this file size run single frames on onnxruntime CPU under ``auto``.
SMALL_MODEL_BYTES = 8 << 20


@dataclass(frozen=True)
class Route:
    """One engine of a plan and the smallest batch it takes."""

    engine: str
    options: EngineOptions
    min_batch: int = 1


@dataclass(frozen=True)
class Choice:
    """What ``auto`` (or an explicit request) decided: the routes, why, and a note to print
    when something the user may expect (a GPU) is not used."""

    routes: tuple[Route, ...]
    reason: str
    note: str | None = None


def openvino_installed() -> bool:
    """True when the ``openvino`` package can be imported."""
    return importlib.util.find_spec("openvino") is not None


def choose(
    provider: str,
    options: EngineOptions,
    *,
    model_bytes: int,
    cuda_loads: bool,
    cuda_reason: str,
    openvino: bool,
) -> Choice:
    """The engines to open for ``provider`` on a machine with these facts (pure: testable)."""
    if provider not in PROVIDERS:
        raise ProviderError(f"provider {provider!r} is not one of {', '.join(PROVIDERS)}")
    if provider != "auto":
        return Choice((Route(provider, options),), f"{provider} was asked for")
    note = None if cuda_loads or cuda_reason == NO_GPU else f"not using CUDA ({cuda_reason})"
    if cuda_loads:
        return Choice((Route("cuda", options),), "an NVIDIA GPU with working CUDA libraries")
    if not openvino:
        return Choice(
            (Route("cpu", options),),
            "CPU; OpenVINO is not installed (pip install 'edgecnn[openvino]' runs batches "
            "1.4-2x faster on most CPUs)",
            note,
        )
    batches = Route("openvino", replace(options, mode="throughput"), SPLIT_BATCH)
    small = model_bytes <= SMALL_MODEL_BYTES
    single = Route("cpu", options) if small else Route("openvino", options)
    why_single = (
        "onnxruntime for smaller batches (a small model: lowest per-call overhead)"
        if small
        else "OpenVINO LATENCY for smaller batches (a large model)"
    )
    return Choice(
        (single, batches),
        f"CPU; OpenVINO THROUGHPUT for batches of {SPLIT_BATCH}+, {why_single}",
        note,
    )


def open_engine(
    model: ModelSource, provider: str = "auto", options: EngineOptions | None = None
) -> tuple[Engine, Choice]:
    """Open ``model`` as ``provider`` decides; the engine and the :class:`Choice` behind it."""
    options = options or EngineOptions()
    if provider != "auto" and provider not in ENGINES:
        raise ProviderError(f"provider {provider!r} is not one of {', '.join(PROVIDERS)}")
    status = cuda_status() if provider == "auto" else None
    size = len(model) if isinstance(model, bytes) else _size(model)
    choice = choose(
        provider,
        options,
        model_bytes=size,
        cuda_loads=bool(status and status.loadable),
        cuda_reason=status.reason if status else "",
        openvino=openvino_installed(),
    )
    if len(choice.routes) == 1:
        return open_route(model, choice.routes[0]), choice
    return RoutedEngine(model, choice.routes), choice


def open_route(model: ModelSource, route: Route) -> Engine:
    """Open one engine by name (no fallback)."""
    if route.engine == "openvino":
        from edgecnn.runtime.engines.openvino_engine import OpenVinoEngine

        return OpenVinoEngine(model, route.options)
    from edgecnn.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine

    return OnnxRuntimeEngine(model, route.engine, route.options)


def _size(model: ModelSource) -> int:
    try:
        return os.path.getsize(model)
    except OSError:
        return 0  # the engine reports the missing file


class RoutedEngine(Engine):
    """Several engines over one model, each taking the batch sizes it is fastest at.

    The first route opens at once (it answers for inputs, outputs and metadata); the others
    open on the first batch they take, so a process that only ever runs single frames never
    pays for them."""

    name = "auto"

    def __init__(self, model: ModelSource, routes: tuple[Route, ...]) -> None:
        self.model = model
        self.routes = sorted(routes, key=lambda r: r.min_batch)
        first = open_route(model, self.routes[0])
        self.engines: list[Engine | None] = [first] + [None] * (len(self.routes) - 1)
        self.inputs, self.outputs, self.metadata = first.inputs, first.outputs, first.metadata
        self._lock = threading.Lock()

    def engine_for(self, batch_size: int) -> Engine:
        """The engine that runs batches of ``batch_size`` (opened now if needed)."""
        index = max(i for i, r in enumerate(self.routes) if batch_size >= r.min_batch)
        engine = self.engines[index]
        if engine is None:
            with self._lock:
                engine = self.engines[index]
                if engine is None:
                    engine = open_route(self.model, self.routes[index])
                    self.engines[index] = engine
        return engine

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.engine_for(len(batch)).run(batch)

    @property
    def provider(self) -> str:
        return " / ".join(self._names(lambda e, r: e.provider if e else PROVIDER_NAMES[r.engine]))

    def describe(self) -> str:
        return "; ".join(self._names(lambda e, r: e.describe() if e else f"{r.engine} (not open)"))

    def _names(self, text: object) -> list[str]:
        out = []
        for i, (route, engine) in enumerate(zip(self.routes, self.engines, strict=True)):
            end = self.routes[i + 1].min_batch - 1 if i + 1 < len(self.routes) else None
            span = f"batch {route.min_batch}+" if end is None else f"batch {route.min_batch}-{end}"
            if route.min_batch == end:
                span = f"batch {end}"
            out.append(f"{text(engine, route)} [{span}]")  # type: ignore[operator]
        return out

    def close(self) -> None:
        for engine in self.engines:
            if engine is not None:
                engine.close()


@dataclass(frozen=True)
class EngineStatus:
    """What ``edgecnn doctor`` says about one engine."""

    engine: str
    installed: bool
    loads: bool
    devices: tuple[str, ...]
    reason: str


def engine_statuses() -> list[EngineStatus]:
    """Each engine: installed, loads here, the devices it sees, and why not when it does not."""
    import onnxruntime as ort

    statuses = [EngineStatus("cpu", True, True, ("CPU",), f"onnxruntime {ort.__version__}")]
    try:
        from edgecnn.runtime.engines.openvino_engine import import_openvino

        core = import_openvino().Core()
        devices = tuple(core.available_devices)
        statuses.append(EngineStatus("openvino", True, bool(devices), devices, "OpenVINO runtime"))
    except MissingDependencyError as exc:
        statuses.append(EngineStatus("openvino", False, False, (), str(exc)))
    except Exception as exc:  # a broken install: say so, do not crash doctor
        statuses.append(EngineStatus("openvino", True, False, (), first_line(exc)))
    status = cuda_status()
    gpu_build = "CUDAExecutionProvider" in ort.get_available_providers()
    devices = ("NVIDIA GPU",) if status.loadable else ()
    reason = status.reason if nvidia_driver() or not gpu_build else NO_GPU
    statuses.append(EngineStatus("cuda", gpu_build, status.loadable, devices, reason))
    trt = "TensorrtExecutionProvider" in ort.get_available_providers()
    statuses.append(
        EngineStatus(
            "tensorrt",
            trt,
            trt and status.loadable,
            devices,
            reason if trt else "this onnxruntime build has no TensorRT provider",
        )
    )
    return statuses
