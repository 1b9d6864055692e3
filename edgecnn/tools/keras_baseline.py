"""The Keras baseline of a benchmark: the same network loaded in Keras (its ``predict`` is timed
beside the ONNX models by :mod:`edgecnn.tools.model_timing`) and the tutorials' pipeline,
``image_dataset_from_directory`` + ``predict``, on the image folder.

Only this module imports TensorFlow, lazily: ``edgecnn bench`` without ``--keras`` never does.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgecnn import _deps
from edgecnn.errors import ExportError
from edgecnn.tools.bench_settings import BenchError
from edgecnn.tools.machine import OtherLoad, others_share, sha256

__all__ = ["TUTORIAL_BATCH", "TUTORIAL_INTERPOLATION", "load_keras_model", "time_tutorial_pipeline"]

#: The batch size of the tutorials' ``image_dataset_from_directory``.
TUTORIAL_BATCH = 16
#: Its resize (Keras's default; edgecnn's interpolation names are Keras's too).
TUTORIAL_INTERPOLATION = "bilinear"


def load_keras_model(path: Path, *, unsafe: bool = False) -> tuple[Any, dict[str, Any]]:
    """The Keras model at ``path`` and the report's facts about it (hash, version, load time).
    ``unsafe``: allow a model needing unsafe deserialization (its code runs)."""
    from edgecnn.export.keras_model import load_keras

    keras = _deps.keras()
    started = time.perf_counter()
    try:
        model = load_keras(path, unsafe=unsafe)
    except ExportError as exc:
        raise BenchError(str(exc)) from exc
    info = {
        "path": str(path),
        "sha256": sha256(path),
        "keras": keras.__version__,
        "load_s": time.perf_counter() - started,
        "input": [d for d in model.inputs[0].shape[1:]],
    }
    return model, info


def time_tutorial_pipeline(
    model: Any, images: Path, fit: str, interpolation: str = TUTORIAL_INTERPOLATION
) -> dict[str, Any]:
    """The tutorials' pipeline on the folder ``images``, timed: ``image_dataset_from_directory``
    (cropping to the aspect ratio when the ONNX model's ``fit`` is crop, resizing with
    ``interpolation``) + ``model.predict``."""
    keras = _deps.keras()
    height, width, channels = (int(d) for d in model.inputs[0].shape[1:4])
    load: dict[str, Any] = {}
    started = time.perf_counter()
    with OtherLoad(load):
        dataset = keras.utils.image_dataset_from_directory(
            images,
            labels=None,
            image_size=(height, width),
            crop_to_aspect_ratio=fit == "crop",
            interpolation=interpolation,
            color_mode="grayscale" if channels == 1 else "rgb",
            batch_size=TUTORIAL_BATCH,
            shuffle=False,
            verbose=False,
        )
        probabilities = model.predict(dataset, verbose=0)
    seconds = time.perf_counter() - started
    return {
        "images": len(probabilities),
        "seconds": seconds,
        "images_per_second": len(probabilities) / seconds,
        "batch_size": TUTORIAL_BATCH,
        "crop_to_aspect_ratio": fit == "crop",
        "interpolation": interpolation,
        "others_cpu_share": others_share(load),
    }
