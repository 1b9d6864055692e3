"""The CPU stage of a distributed run: read each input's bytes, decode and prepare it.

Runs as plain Ray tasks (no model), so decoding spreads over every CPU of the cluster while the
inference actors run. Every row goes through edgecnn's one preprocessing function
(:func:`edgecnn.runtime.batch_pipeline.load_one` -> :mod:`edgecnn.preprocess`, reduced-size JPEG
decode included): the pixels are those local ``classify`` feeds the model. A file that cannot be
read or decoded becomes a row carrying its error; nothing raises.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from edgecnn.classify.input_discovery import Item
from edgecnn.errors import ImageError
from edgecnn.runtime.batch_pipeline import Loaded, load_item, load_one
from edgecnn.scale.input_listing import is_uri, read_uri_bytes
from edgecnn.spec import InputSpec

#: Columns this stage adds: the model-ready image, the error ("" when none), stage timings (NaN
#: when the stage did not run).
IMAGE_COLUMNS = ("path", "image", "error", "decode_ms", "preprocess_ms")


def load_row(path: str, file: str | None, error: str | None, spec: InputSpec) -> Loaded:
    """One listing row -> :class:`Loaded` (local files exactly as local ``classify`` loads them)."""
    if error or not file:
        return Loaded(path, None, error or "no path", {})
    if not is_uri(file):
        return load_item(Item(path, path=file), spec)
    t0 = time.perf_counter()
    try:
        data = read_uri_bytes(file)
    except ImageError as exc:
        return Loaded(path, None, exc.reason, {})
    loaded = replace(load_one(data, spec), source=path)
    if loaded.error is None:  # reading is part of "decode", as for a local file
        read_ms = (time.perf_counter() - t0) * 1e3 - sum(loaded.timings.values())
        loaded.timings["decode"] += max(read_ms, 0.0)
    return loaded


def load_bytes_row(path: str, data: bytes, spec: InputSpec) -> Loaded:
    """A row that already carries its encoded bytes (``ray.data.read_binary_files``)."""
    return replace(load_one(bytes(data), spec), source=path)


def prepare_images(
    batch: dict[str, Any], *, spec: InputSpec, threads: int = 1
) -> dict[str, np.ndarray]:
    """Ray ``map_batches`` stage: rows with ``path`` (+ ``file`` / ``error`` from the listing, or
    ``bytes``) -> :data:`IMAGE_COLUMNS`. Error rows carry a zero image that is never inferred.
    ``threads``: rows decoded at once (OpenCV releases the GIL while it decodes)."""
    paths = [str(p) for p in batch["path"]]
    n = len(paths)
    images = np.zeros((n, *spec.shape), np.uint8)
    errors = [""] * n
    decode_ms = np.full(n, math.nan)
    preprocess_ms = np.full(n, math.nan)

    def load(i: int) -> None:
        if "bytes" in batch:
            loaded = load_bytes_row(paths[i], batch["bytes"][i], spec)
        else:
            file = batch["file"][i] if "file" in batch else paths[i]
            error = batch["error"][i] if "error" in batch else None
            loaded = load_row(paths[i], file, error, spec)
        if loaded.array is not None:
            images[i] = loaded.array
        else:
            errors[i] = loaded.error or "unknown error"
        decode_ms[i] = loaded.timings.get("decode", math.nan)
        preprocess_ms[i] = loaded.timings.get("preprocess", math.nan)

    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)  # parallel tasks (and threads): OpenCV's own pool would oversubscribe
    try:
        if threads > 1 and n > 1:
            with ThreadPoolExecutor(min(threads, n), thread_name_prefix="edgecnn-decode") as pool:
                list(pool.map(load, range(n)))
        else:
            for i in range(n):
                load(i)
    finally:
        cv2.setNumThreads(previous)
    return {
        "path": np.array(paths, dtype=object),
        "image": images,
        "error": np.array(errors, dtype=object),
        "decode_ms": decode_ms,
        "preprocess_ms": preprocess_ms,
    }
