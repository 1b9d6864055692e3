"""onnxruntime engines: CPU, CUDA and TensorRT execution providers of one session.

The provider reported is ``session.get_providers()[0]``, never the list of *available*
providers: onnxruntime-gpu lists CUDA even where its libraries cannot load and would then run on
the CPU. An engine asked for CUDA or TensorRT that ends up elsewhere raises instead.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgecnn.errors import ProviderError
from edgecnn.runtime.engines.base import (
    Engine,
    EngineOptions,
    ModelSource,
    TensorInfo,
    check_model_file,
    default_cache_dir,
    first_line,
    model_name,
    unusable_model,
    warm_up,
)
from edgecnn.runtime.providers import (
    CPU,
    CUDA,
    CUDA_HINT,
    NO_GPU,
    TENSORRT,
    cuda_status,
    session_options,
)

_PROVIDER_OF = {"cpu": CPU, "cuda": CUDA, "tensorrt": TENSORRT}


class OnnxRuntimeEngine(Engine):
    """One onnxruntime session on the CPU, CUDA or TensorRT provider."""

    def __init__(
        self, model: ModelSource, engine: str = "cpu", options: EngineOptions | None = None
    ) -> None:
        if engine not in _PROVIDER_OF:
            raise ValueError(f"onnxruntime engine must be cpu, cuda or tensorrt, not {engine!r}")
        options = options or EngineOptions()
        self.name = engine
        self.options = options
        self.path = model_name(model)
        self.build_s: float | None = None
        source = check_model_file(model)
        if engine != "cpu":
            status = cuda_status()
            if status.reason == NO_GPU:
                raise ProviderError(f"{engine}: no NVIDIA GPU here (no NVIDIA driver found)")
            if not status.loadable:
                raise ProviderError(f"{engine}: {status.reason}; {CUDA_HINT}")
            if engine == "tensorrt" and TENSORRT not in ort.get_available_providers():
                raise ProviderError("tensorrt: this onnxruntime build has no TensorRT provider")
        spinning = True if options.spinning is None else options.spinning
        started = time.perf_counter()
        try:
            self.session = ort.InferenceSession(
                source,
                session_options(options.threads, spinning=spinning),
                providers=self._providers(source),
            )
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            if engine != "cpu" and "Provider" in str(exc):
                reason = first_line(exc)
                raise ProviderError(f"{engine}: onnxruntime could not start it ({reason})") from exc
            raise unusable_model(model, exc) from exc
        actual = self.session.get_providers()[0]
        if actual != _PROVIDER_OF[engine]:
            raise ProviderError(
                f"{engine}: onnxruntime could not start {_PROVIDER_OF[engine]} and would run on "
                f"{actual}; {CUDA_HINT}"
            )
        self.spinning = spinning
        self.inputs = [_info(x) for x in self.session.get_inputs()]
        self.outputs = [_info(x) for x in self.session.get_outputs()]
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self._input = self.inputs[0].name if self.inputs else ""
        self._output = self.outputs[0].name if self.outputs else ""
        self._wanted = [self._output]
        # InferenceSession.run() checks the feed in Python, then calls its binding (~1.4 us a
        # call: ~1% of a batch-1 run of the bundled model, the engines benchmark's closest
        # rows). The feed here is always the one input as a NumPy array, so run() calls that
        # binding directly, which also skips run()'s fall-back to other providers when one
        # fails mid-run (edgecnn reports the failure, never moves silently). Public run()
        # where an onnxruntime has no such binding.
        binding = getattr(self.session, "_sess", None)
        self._run = binding.run if callable(getattr(binding, "run", None)) else self.session.run
        if engine == "cpu":
            warm_up(self)
        else:  # TensorRT builds (or loads) its engine for both ends of the profile here
            warm_up(self, (1, min(16, options.max_batch)), runs=1, strict=True)
        self.build_s = time.perf_counter() - started

    def _providers(self, source: str | bytes) -> list[str | tuple[str, dict[str, str]]]:
        if self.name == "cpu":
            return [CPU]
        if self.name == "cuda":
            return [CUDA, CPU]
        return [(TENSORRT, self._tensorrt_options(source)), CUDA, CPU]

    def _tensorrt_options(self, source: str | bytes) -> dict[str, str]:
        """Engine + timing caches on disk, fp16 when f16 is asked (f32 otherwise: the registry
        refuses bf16 here), and an explicit batch
        profile 1..max_batch so a new batch size never triggers a rebuild."""
        cache = Path(self.options.cache_dir or default_cache_dir()) / "tensorrt"
        cache.mkdir(parents=True, exist_ok=True)
        probe = ort.InferenceSession(source, providers=[CPU])  # shapes, without building TRT
        image = probe.get_inputs()[0]
        dims = [d if isinstance(d, int) and d > 0 else None for d in image.shape[1:]]
        trt = {
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(cache),
            "trt_fp16_enable": "True" if self.options.precision == "f16" else "False",
        }
        if None not in dims:
            shape = "x".join(map(str, dims))
            top = self.options.max_batch
            trt["trt_profile_min_shapes"] = f"{image.name}:1x{shape}"
            trt["trt_profile_opt_shapes"] = f"{image.name}:{min(16, top)}x{shape}"
            trt["trt_profile_max_shapes"] = f"{image.name}:{top}x{shape}"
        return trt

    def run(self, batch: np.ndarray) -> np.ndarray:
        """One run of the session (thread-safe; releases the GIL)."""
        return self._run(self._wanted, {self._input: batch}, None)[0]

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def describe(self) -> str:
        threads = self.options.threads or "default"
        text = f"onnxruntime {ort.__version__} {self.provider}"
        if self.name == "cpu":
            return f"{text} (threads {threads}, spinning {'on' if self.spinning else 'off'})"
        if self.name == "tensorrt":
            fp16 = self.options.precision == "f16"
            return f"{text} (fp16 {'on' if fp16 else 'off'}, batch 1..{self.options.max_batch})"
        return text

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
        self._run = None  # the binding holds the session too


def _info(arg: ort.NodeArg) -> TensorInfo:
    return TensorInfo(arg.name, list(arg.shape), arg.type)
