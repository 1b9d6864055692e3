"""What this machine can do for edgecnn: versions, providers that really load, display, cameras,
and the CPU features that decide whether int8 pays off.

The facts come from the modules that act on them (``machine.cpu_info`` for quantization and
benchmarks, ``outputs.display_problem`` for windows, ``providers.cuda_status`` for sessions), so
doctor can never say something the rest of edgecnn disagrees with.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.metadata
import platform
import sys
from typing import Any

import cv2
import onnxruntime as ort

from edgecnn._version import __version__
from edgecnn.runtime.engines.registry import engine_statuses
from edgecnn.runtime.providers import cuda_status
from edgecnn.tools.machine import cpu_info

_PACKAGES = (
    "numpy",
    "onnxruntime",
    "onnxruntime-gpu",
    "opencv-python",
    "opencv-python-headless",
    "click",
    "pillow",
    "tensorflow",
    "keras",
    "tf2onnx",
    "onnx",
    "openvino",
)


def cameras() -> list[str]:
    """Video devices visible to this process (Linux ``/dev/video*``)."""
    return sorted(glob.glob("/dev/video*"))


def report() -> dict[str, Any]:
    """Everything ``edgecnn doctor`` prints, as a dict."""
    from edgecnn.live.frame_outputs import display_problem

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    status = cuda_status()
    engines = [dataclasses.asdict(e) for e in engine_statuses()]
    window_problem = display_problem()
    return {
        "edgecnn": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "providers_available": ort.get_available_providers(),
        "cuda_loads": status.loadable,
        "cuda_reason": status.reason,
        "engines": engines,
        "opencv": cv2.__version__,
        "window": window_problem is None,
        "window_reason": window_problem or "a window opens here",
        "cameras": cameras(),
        "cpu": cpu_info(),
    }
