"""Which engine runs a model: explicit requests, the ``auto`` rules, and what each engine can do.

An explicit engine (``cpu``, ``openvino``, ``cuda``, ``tensorrt``) either opens or raises
:class:`ProviderError` with the reason; it never falls back. The same holds for precision
(:data:`ENGINE_PRECISIONS`): onnxruntime CPU and CUDA run a model's f32 graph as it is, so
``bf16`` / ``f16`` on them are refused rather than run silently in f32; TensorRT runs ``f32``
(its default here) or ``f16`` (its fp16 kernels), not ``bf16``; OpenVINO runs all three.
``auto`` always says what it chose and why (:attr:`Choice.reason`;
:mod:`edgecnn.runtime.engines.racing` for the race):

0. ``bf16`` / ``f16`` asked: OpenVINO at that precision, one engine (racing it against
   engines at f32 would mix precisions batch by batch); refused when OpenVINO is missing.

1. An NVIDIA GPU whose CUDA libraries load: ``cuda`` (TensorRT only when asked: its first
   build of an engine takes minutes).
2. Otherwise, with OpenVINO installed, the candidates race on the real batches and the fastest
   per batch-size class runs them: for models up to :data:`SMALL_MODEL_BYTES` onnxruntime CPU,
   OpenVINO THROUGHPUT and OpenVINO LATENCY; for larger ones the two OpenVINO modes (measured:
   onnxruntime is 1.4-2x slower than OpenVINO on every seed-sized model, and a third copy of
   a large model's weights is not worth it).
3. Without OpenVINO: onnxruntime CPU, and the reason says what ``edgecnn[openvino]`` would add.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass, replace

from edgecnn.errors import MissingDependencyError, ProviderError
from edgecnn.runtime.engines.base import (
    ENGINES,
    PROVIDERS,
    Engine,
    EngineOptions,
    ModelSource,
    first_line,
)
from edgecnn.runtime.engines.racing import RacingEngine
from edgecnn.runtime.providers import NO_GPU, cuda_status, nvidia_driver

#: What each engine runs (``EngineOptions.precision``); anything else is refused.
ENGINE_PRECISIONS = {
    "cpu": ("f32",),
    "cuda": ("f32",),
    "tensorrt": ("f32", "f16"),
    "openvino": ("f32", "bf16", "f16"),
}
#: Models up to this file size also race on onnxruntime CPU under ``auto``.
SMALL_MODEL_BYTES = 8 << 20
#: How each candidate is named in ``auto``'s choices.
LABELS = {
    ("cpu", "latency"): "CPUExecutionProvider",
    ("openvino", "latency"): "OpenVINO:CPU LATENCY",
    ("openvino", "throughput"): "OpenVINO:CPU THROUGHPUT",
    ("cuda", "latency"): "CUDAExecutionProvider",
    ("tensorrt", "latency"): "TensorrtExecutionProvider",
}


@dataclass(frozen=True)
class Route:
    """One engine of a plan, with its options."""

    engine: str
    options: EngineOptions

    @property
    def label(self) -> str:
        """How ``auto`` names this candidate."""
        return LABELS.get((self.engine, self.options.mode), self.engine)


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
        check_precision(provider, options.precision)
        return Choice((Route(provider, options),), f"{provider} was asked for")
    if options.precision != "f32":
        if not openvino:
            raise ProviderError(
                f"auto: `precision` {options.precision} runs on OpenVINO, which is not "
                "installed (pip install 'edgecnn[openvino]')"
            )
        why = f"{options.precision} was asked for: OpenVINO runs it (onnxruntime CPU/CUDA: f32)"
        return Choice((Route("openvino", options),), why)
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
    throughput = Route("openvino", replace(options, mode="throughput"))
    latency = Route("openvino", replace(options, mode="latency"))
    if model_bytes <= SMALL_MODEL_BYTES:
        routes = (Route("cpu", options), throughput, latency)
        why = "a small model"
    else:
        routes = (throughput, latency)
        why = "a large model: OpenVINO only"
    names = ", ".join(r.label for r in routes)
    return Choice(routes, f"CPU, {why}: the fastest of {names} per batch size, measured", note)


def check_precision(engine: str, precision: str) -> None:
    """ProviderError with the reason when ``engine`` cannot run ``precision`` (no fallback)."""
    runs = ENGINE_PRECISIONS[engine]
    if precision in runs:
        return
    others = [name for name, can in ENGINE_PRECISIONS.items() if precision in can]
    raise ProviderError(
        f"{engine}: runs {' or '.join(runs)}, not `precision` {precision}; {precision} runs on "
        f"`provider` {' or '.join(others)} (or auto)"
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
    openers = [functools.partial(open_route, model, route) for route in choice.routes]
    return RacingEngine(openers, [r.label for r in choice.routes]), choice


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
