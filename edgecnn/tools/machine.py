"""What a benchmark result depends on besides the model: this machine and its load.

:func:`environment` (versions, CPU model and flags, cores, load average) goes into every bench
report; :class:`OtherLoad` records how much CPU other processes took during a measurement, so
a disturbed number can be recognised as such.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def available_cores() -> int:
    """CPU cores this process may use (respects affinity / container CPU sets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


#: CPU flags of fast 8-bit dot products that do not saturate: AVX-512 VNNI (Cascade Lake and
#: later Xeons, Zen 4), AVX-VNNI (Alder Lake and later), AMX int8 (Sapphire Rapids).
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def cpu_info(cpuinfo: str = "/proc/cpuinfo") -> dict[str, Any]:
    """CPU model name and the flags that decide speed, read once from ``cpuinfo``.

    ``avx2``, ``avx512`` (avx512f), ``neon`` (ARM asimd) and ``vnni``: any of
    :data:`VNNI_FLAGS`, i.e. onnxruntime's uint8 x int8 kernels use ``vpdpbusd`` and int8
    quantization needs no ``reduce_range``. Every key is present (False) where the file is
    missing (not Linux).
    """
    name = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name in ("", platform.machine()):
                    name = value.strip()
                elif key.strip() in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {
        "model": name,
        "avx2": "avx2" in flags,
        "avx512": "avx512f" in flags,
        "vnni": bool(flags & VNNI_FLAGS),
        "neon": bool(flags & {"asimd", "neon"}),
        "cores": available_cores(),
        "logical_cpus": os.cpu_count(),
    }


def environment() -> dict[str, Any]:
    """Versions, CPU and load: enough to reproduce (or distrust) a result."""
    import onnxruntime as ort  # here, so that dataset tools reading cpu_info do not load it

    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "onnxruntime": ort.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "load_average": load,
    }


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class OtherLoad:
    """Context manager adding to ``record`` how much CPU *other* processes used meanwhile.

    Reads ``/proc/stat`` (the machine's busy time) and ``os.times`` (this process); the share
    ``others_cpu_s / (wall_s x logical CPUs)`` tells whether a measurement was disturbed.
    Records nothing where ``/proc/stat`` is missing (not Linux).
    """

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.start: tuple[float, float, float] | None = None

    @staticmethod
    def snapshot() -> tuple[float, float, float] | None:
        """(wall s, machine busy CPU s, this process's CPU s), or None off Linux."""
        try:
            with open("/proc/stat", encoding="ascii") as fh:
                ticks = [int(x) for x in fh.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
        own = os.times()
        return time.perf_counter(), busy, own.user + own.system

    def __enter__(self) -> OtherLoad:
        self.start = self.snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self.snapshot()
        if self.start is None or end is None:
            return
        wall = end[0] - self.start[0]
        others = max(0.0, (end[1] - self.start[1]) - (end[2] - self.start[2]))
        self.record["others_cpu_s"] = self.record.get("others_cpu_s", 0.0) + others
        self.record["load_wall_s"] = self.record.get("load_wall_s", 0.0) + wall


def others_share(record: dict[str, Any]) -> float | None:
    """Fraction of the machine's CPU used by other processes during ``record``'s measurement."""
    wall = record.get("load_wall_s")
    if not wall:
        return None
    return min(1.0, record["others_cpu_s"] / (wall * (os.cpu_count() or 1)))


def int8_target_problem(
    quantization: dict[str, Any] | None, cpu: dict[str, Any] | None = None
) -> str | None:
    """Why an int8 model may lose accuracy on this CPU, or None.

    A model quantized without ``reduce_range`` (8-bit weights: ``--int8-target vnni``) relies on
    VNNI on x86: the AVX2 ``vpmaddubsw`` path of CPUs without it can saturate uint8 x int8 sums.
    """
    if not quantization or quantization.get("reduce_range") is not False:
        return None
    if quantization.get("activations", "uint8") != "uint8" or quantization.get("weights") != "int8":
        return None
    cpu = cpu or cpu_info()
    if cpu["vnni"] or not (cpu["avx2"] or cpu["avx512"]):
        return None  # VNNI present, or not x86 (ARM's int8 dot products do not saturate)
    target = quantization.get("target") or "vnni"
    return (
        f"this int8 model was quantized for {target} CPUs (8-bit weights, no reduce_range) and "
        "this CPU has no VNNI: its int8 results may lose accuracy; re-export it with "
        "--int8-target portable"
    )
