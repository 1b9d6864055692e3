"""What this machine can do for edgecnn: versions, providers that really load, display, cameras,
and the CPU features that decide whether int8 pays off."""

from __future__ import annotations

import glob
import importlib.metadata
import os
import platform
import sys
from typing import Any

import cv2

from edgecnn._version import __version__
from edgecnn.providers import cuda_status

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
)


def cpu_info() -> dict[str, Any]:
    """CPU model and the SIMD flags that matter for int8 (from /proc/cpuinfo on Linux)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    model = value.strip()
                elif key.strip() in ("flags", "Features"):
                    flags.update(value.split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "neon", "asimddp")
    return {
        "model": model,
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "flags": {flag: flag in flags for flag in wanted},
        "vnni": "avx512_vnni" in flags or "avx_vnni" in flags,
    }


def gui_status() -> tuple[bool, str]:
    """Whether ``cv2.imshow`` can open a window here (it aborts the process when it cannot)."""
    info = cv2.getBuildInformation()
    gui = ""
    for line in info.splitlines():
        if line.strip().startswith("GUI:"):
            gui = line.split(":", 1)[1].strip()
    if not gui or gui.upper() == "NONE":
        return False, "this OpenCV build has no GUI backend (headless wheel)"
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False, f"no display (DISPLAY / WAYLAND_DISPLAY unset); GUI backend {gui}"
    return True, f"GUI backend {gui}"


def cameras() -> list[str]:
    """Video devices visible to this process (Linux ``/dev/video*``)."""
    return sorted(glob.glob("/dev/video*"))


def report() -> dict[str, Any]:
    """Everything ``edgecnn doctor`` prints, as a dict."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    import onnxruntime as ort

    status = cuda_status()
    window, window_reason = gui_status()
    return {
        "edgecnn": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "providers_available": ort.get_available_providers(),
        "cuda_loads": status.loadable,
        "cuda_reason": status.reason,
        "opencv": cv2.__version__,
        "window": window,
        "window_reason": window_reason,
        "cameras": cameras(),
        "cpu": cpu_info(),
    }
