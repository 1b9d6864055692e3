"""The OpenVINO engine: the plain ``openvino`` runtime reading the same ``.onnx`` file.

No conversion step for the user: ``Core.read_model`` reads the ONNX graph and its metadata.
``latency`` mode compiles with the LATENCY hint (all cores on one batch: single frames);
``throughput`` mode with the THROUGHPUT hint, and a batch is split between the compiled
model's optimal number of asynchronous infer requests. Precision is ``f32`` unless asked
(OpenVINO would pick bf16 on CPUs that have it, which changes top-1 on close calls).
Compiled models are cached on disk, so a second load skips compilation; compilation and a
warm-up run happen at load (``build_s``), never inside the first batch.
"""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import MissingDependencyError, ProviderError
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

_TYPES = {
    "u8": "tensor(uint8)",
    "i8": "tensor(int8)",
    "f32": "tensor(float)",
    "f16": "tensor(float16)",
    "i64": "tensor(int64)",
    "i32": "tensor(int32)",
}


def import_openvino() -> Any:
    """The ``openvino`` module, or MissingDependencyError naming the extra."""
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError("openvino", "openvino") from None
    return openvino


class OpenVinoEngine(Engine):
    """One compiled OpenVINO model plus a pool of infer requests (thread-safe ``run``)."""

    name = "openvino"

    def __init__(
        self, model: ModelSource, options: EngineOptions | None = None, device: str = "CPU"
    ) -> None:
        ov = import_openvino()
        started = time.perf_counter()
        options = options or EngineOptions()
        self.options = options
        self.device = device
        self.path = model_name(model)
        source = check_model_file(model)
        core = ov.Core()
        if device not in core.available_devices:
            raise ProviderError(
                f"openvino: device {device} not found (OpenVINO sees "
                f"{', '.join(core.available_devices) or 'no device'})"
            )
        try:
            read = core.read_model(source) if isinstance(source, str) else _read_bytes(core, source)
        except Exception as exc:
            raise unusable_model(model, exc) from exc
        self.inputs = [_info(x) for x in read.inputs]
        self.outputs = [_info(x) for x in read.outputs]
        self.metadata = _metadata(read)
        config = {
            "PERFORMANCE_HINT": options.mode.upper(),
            "INFERENCE_PRECISION_HINT": options.precision,
        }
        if options.threads is not None:
            config["INFERENCE_NUM_THREADS"] = str(options.threads)
        if isinstance(source, str):
            cache = Path(options.cache_dir or default_cache_dir()) / "openvino"
            try:
                cache.mkdir(parents=True, exist_ok=True)
                config["CACHE_DIR"] = str(cache)
            except OSError:
                pass  # no writable cache: compile every time, still correct
        try:
            # compiled from the path (not the read model) so the on-disk cache can be used
            target = source if isinstance(source, str) and "CACHE_DIR" in config else read
            self.compiled = core.compile_model(target, device, config)
        except Exception as exc:
            raise ProviderError(
                f"openvino: cannot compile {self.path} ({first_line(exc)})"
            ) from exc
        self.requests_wanted = (
            int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            if options.mode == "throughput"
            else 1
        )
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = getattr(hint, "get_type_name", lambda: str(hint))()
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.version = ov.get_version().split("-")[0]
        warm_up(self)  # the first inference allocates: paid at load, not by the first batch
        #: seconds to read, compile (or load from the cache) and warm up
        self.build_s = time.perf_counter() - started

    def _request(self) -> Any:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return self.compiled.create_infer_request()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """One batch: on one request (latency, or a small batch) or split between several
        asynchronous requests (throughput)."""
        parts = min(self.requests_wanted, len(batch))
        if parts <= 1:
            request = self._request()
            try:
                request.infer({0: batch}, share_inputs=True)
                return request.get_output_tensor(0).data.copy()
            finally:
                self._idle.put(request)
        chunks = np.array_split(batch, parts)
        requests = [self._request() for _ in chunks]
        try:
            for request, chunk in zip(requests, chunks, strict=True):
                request.start_async({0: chunk}, share_inputs=True)
            for request in requests:
                request.wait()
            return np.concatenate([r.get_output_tensor(0).data for r in requests])
        finally:
            for request in requests:
                self._idle.put(request)

    @property
    def provider(self) -> str:
        return f"OpenVINO:{self.device}"

    def describe(self) -> str:
        hint = self.options.mode.upper()
        requests = f", {self.requests_wanted} async requests" if self.requests_wanted > 1 else ""
        threads = f", {self.options.threads} threads" if self.options.threads else ""
        return (
            f"OpenVINO {self.version} {self.device} ({hint}{requests}{threads}, {self.precision})"
        )

    def close(self) -> None:
        self.compiled = None


def _read_bytes(core: Any, data: bytes) -> Any:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".onnx") as fh:
        fh.write(data)
        fh.flush()
        return core.read_model(fh.name)


def _info(port: Any) -> TensorInfo:
    shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
    names = port.get_names()
    name = port.get_any_name() if names else ""
    return TensorInfo(name, shape, _TYPES.get(port.get_element_type().get_type_name(), "?"))


def _metadata(model: Any) -> dict[str, str]:
    """ONNX ``metadata_props``: OpenVINO keeps them under rt_info["framework"]."""
    try:
        keys = list(model.get_rt_info()["framework"])
    except Exception:  # no metadata at all (OpenVINO then holds an empty, non-iterable value)
        return {}
    found = {}
    for key in keys:
        try:
            found[key] = model.get_rt_info(["framework", key]).astype(str)
        except Exception:
            continue
    return found
