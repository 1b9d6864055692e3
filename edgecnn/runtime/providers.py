"""Execution providers: which onnxruntime backend can really run here, and creating sessions.

The provider reported anywhere is ``session.get_providers()[0]``, never the list of
*available* providers: onnxruntime-gpu lists CUDA even on a machine where its libraries cannot
load, and then silently runs on the CPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from edgecnn.errors import ModelError, ProviderError
from edgecnn.model_files import keras_not_onnx, model_kind

#: What :func:`create_session` accepts (the engine layer takes more: see engines.base).
SESSION_PROVIDERS = ("auto", "cpu", "cuda")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

CUDA_HINT = (
    "install the CUDA 13 / cuDNN 9 runtime with `pip install 'edgecnn[cuda]'` "
    "(onnxruntime-gpu on Linux x86-64 or Windows) and make sure an NVIDIA driver is present"
)


@dataclass(frozen=True)
class CudaStatus:
    """Whether onnxruntime's CUDA provider library loads here, and if not, why."""

    loadable: bool
    reason: str


NO_GPU = "no NVIDIA GPU"


def nvidia_driver() -> bool:
    """True when an NVIDIA driver is installed here (its kernel module or its libcuda)."""
    if os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidiactl"):
        return True
    names = ("nvcuda.dll",) if os.name == "nt" else ("libcuda.so.1",)
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


@functools.cache
def cuda_status() -> CudaStatus:
    """Check that the CUDA provider and the libraries it links against can be loaded.

    Without any NVIDIA driver the answer is simply "no NVIDIA GPU": nothing is missing that
    the user could install. Cached: the libraries of a process do not change.
    """
    if CUDA not in ort.get_available_providers():
        return CudaStatus(False, "this onnxruntime build has no CUDA provider (CPU-only wheel)")
    if not nvidia_driver():
        return CudaStatus(False, NO_GPU)
    if hasattr(ort, "preload_dlls") and importlib.util.find_spec("nvidia") is not None:
        # Load CUDA / cuDNN from the nvidia-* wheels of the [cuda] extra. It prints what it
        # cannot find; the CDLL check below says the same thing once, in our message.
        with (
            open(os.devnull, "w") as sink,
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
            contextlib.suppress(Exception),  # a failed preload is diagnosed just below
        ):
            ort.preload_dlls()
    name = (
        "onnxruntime_providers_cuda.dll" if os.name == "nt" else "libonnxruntime_providers_cuda.so"
    )
    library = Path(ort.__file__).parent / "capi" / name
    try:
        ctypes.CDLL(str(library))
    except OSError as exc:
        missing, _, cause = str(exc).partition(": cannot open shared object file")
        detail = f"{missing} not found" if cause else str(exc)
        return CudaStatus(False, f"onnxruntime's CUDA provider cannot load: {detail}")
    return CudaStatus(True, "CUDA provider library loads")


def session_options(threads: int | None = None, *, spinning: bool = False) -> ort.SessionOptions:
    """Options for inference: full graph optimization, ``threads`` intra-op threads (None: ORT's
    default, one per physical core), and warnings only (no info spam on stderr).

    ``spinning`` off (the default): onnxruntime's idle intra-op threads sleep instead of
    busy-waiting, so they leave the cores to the decode workers (and to other sessions) between
    and during runs; on an idle machine it costs a few microseconds of wake-up per run.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, not {threads}")
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


def create_session(
    model: str | Path | bytes,
    provider: str = "auto",
    threads: int | None = None,
    status: CudaStatus | None = None,
) -> tuple[ort.InferenceSession, str | None]:
    """Open ``model`` on ``provider``; returns the session and a note when ``auto`` fell back.

    ``cuda`` raises :class:`ProviderError` naming what is missing instead of falling back.
    ``status``: a :func:`cuda_status` the caller already has (it loads libraries: once is enough).
    """
    if provider not in SESSION_PROVIDERS:
        raise ProviderError(f"provider {provider!r} is not one of {', '.join(SESSION_PROVIDERS)}")
    note = None
    providers = [CPU]
    if provider in ("auto", "cuda"):
        status = status or cuda_status()
        if status.loadable:
            providers = [CUDA, CPU]
        elif provider == "cuda":
            raise ProviderError(f"`provider` cuda: {status.reason}; {CUDA_HINT}")
        elif status.reason != NO_GPU:  # a GPU is there but unusable: worth saying
            note = f"using CPU ({status.reason})"
    session = _open(model, providers, threads)
    actual = session.get_providers()[0]
    if CUDA in providers and actual != CUDA:
        if provider == "cuda":
            raise ProviderError(f"`provider` cuda: onnxruntime could not start CUDA; {CUDA_HINT}")
        note = "CUDA provider failed to start (no GPU or driver?); running on CPU"
    return session, note


def _open(
    model: str | Path | bytes, providers: list[str], threads: int | None
) -> ort.InferenceSession:
    name = "<bytes>" if isinstance(model, bytes) else os.fsdecode(model)
    if not isinstance(model, bytes):
        if not os.path.exists(model):
            raise ModelError(f"{name}: no such model file")
        if os.path.isdir(model):
            hint = keras_not_onnx(name, model_kind(model))
            raise ModelError(hint or f"{name}: is a directory, not an .onnx model file")
        model = os.fsdecode(model)
    try:
        return ort.InferenceSession(model, session_options(threads), providers=providers)
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        if isinstance(model, str) and (hint := keras_not_onnx(name, model_kind(model))):
            raise ModelError(hint) from exc
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{name}: not a usable ONNX model ({first_line})") from exc
