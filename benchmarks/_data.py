"""Data and models for ``classify_speed.py``, generated once and cached (under /scratch/).

Large photos: ~4000x2700 JPEGs drawn with :func:`edgecnn.data.shapes.draw_shape`, plus a per-file
texture of sensor-like noise so each file is 1-3 MB and decodes like a real photo (flat images
decode unrealistically fast). Small images: the shapes dataset at thumbnail size. Models: the
``plant`` architecture (random weights: speed does not depend on them) exported with
:func:`edgecnn.export.export_model` (what ``edgecnn export`` runs: verification against Keras,
metadata, report) to fp32 and static int8 (QDQ, uint8 activations, int8 per-channel weights,
reduce_range on CPUs without VNNI, calibrated on the photos sampled evenly over classes).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from edgecnn.tools.machine import available_cores

LARGE_SIZE = (2672, 4000)  # (height, width) of the plant-disease photos
PLANT_SPEC = {"height": 256, "width": 256, "channels": 3, "color": "rgb", "fit": "crop"}
PLANT_LABELS = ("Healthy", "Powdery", "Rust")
#: Export: calibration and verification images, sampled evenly over the photos' class folders.
CALIBRATION_COUNT = 64
VERIFY_COUNT = 64


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _large_photo(index: int, bases: list[np.ndarray]) -> bytes:
    rng = np.random.default_rng([7, index])
    image = bases[index % len(bases)]
    if index // len(bases) % 2:
        image = image[:, ::-1]
    # Film-grain-like texture at two scales: fine noise plus a blurred coarse one.
    fine = rng.integers(-10, 11, image.shape, dtype=np.int16)
    coarse = cv2.resize(
        rng.integers(-14, 15, (image.shape[0] // 8, image.shape[1] // 8, 3), dtype=np.int16).astype(
            np.float32
        ),
        (image.shape[1], image.shape[0]),
        interpolation=cv2.INTER_LINEAR,
    ).astype(np.int16)
    textured = np.clip(image.astype(np.int16) + fine + coarse, 0, 255).astype(np.uint8)
    quality = int(rng.integers(82, 90))
    ok, buf = cv2.imencode(".jpg", textured, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def large_photos(folder: Path, count: int) -> Path:
    """``count`` ~4000x2700 JPEG photos (1-3 MB each) under ``folder/<class>/``; cached."""
    from edgecnn.data.shapes import SHAPE_LABELS, draw_shape

    labels = SHAPE_LABELS[:3]
    done = sorted(folder.glob("*/*.jpg"))
    if len(done) >= count:
        return folder
    _say(f"generating {count} large photos in {folder} (once; cached) ...")
    started = time.perf_counter()
    bases = []
    for i in range(12):
        rng = np.random.default_rng([11, i])
        bases.append(draw_shape(labels[i % 3], LARGE_SIZE, rng))

    def work(i: int) -> None:
        path = folder / labels[i % 3] / f"photo_{i:05d}.jpg"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(_large_photo(i, bases))
            tmp.rename(path)

    with ThreadPoolExecutor(available_cores()) as pool:
        for n, _ in enumerate(pool.map(work, range(count)), 1):
            if n % 25 == 0:
                _say(f"  {n}/{count} photos ({time.perf_counter() - started:.0f} s)")
    return folder


def small_images(folder: Path, count: int, size: tuple[int, int] = (120, 160)) -> Path:
    """``count`` small shape JPEGs under ``folder/<class>/``; cached."""
    from edgecnn.data.shapes import SHAPE_LABELS, generate_shapes

    have = len(list(folder.glob("*/*.jpg")))
    if have >= count:
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    _say(f"generating {count} small images in {folder} ...")
    per_class = -(-count // len(SHAPE_LABELS))
    generate_shapes(folder, per_class, size=size, seed=3)
    return folder


def subset(source: Path, folder: Path, count: int) -> Path:
    """A folder with the first ``count`` images of ``source`` (hard links), for memory runs."""
    if folder.exists() and len(list(folder.glob("*.jpg"))) == count:
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for i, path in enumerate(sorted(source.glob("*/*.jpg"))[:count]):
        os.link(path, folder / f"{i:05d}_{path.name}")
    return folder


def export_pair(
    keras_path: Path, spec: object, labels: tuple[str, ...], arch: str, images: Path, out: Path
) -> tuple[Path, Path]:
    """Export ``keras_path`` to ``out/<arch>-fp32.onnx`` and ``-int8.onnx`` with
    :func:`edgecnn.export.export_model`, the code behind ``edgecnn export``: verified against
    Keras on the photos, int8 calibrated on them (sampled evenly over the class folders)."""
    from edgecnn.export import ExportOptions, export_model
    from edgecnn.export.model_source import InputOverrides

    fp32, int8 = out / f"{arch}-fp32.onnx", out / f"{arch}-int8.onnx"
    if fp32.exists() and int8.exists():
        return fp32, int8
    _say(f"exporting {arch} to ONNX fp32 + int8 (once; cached) ...")
    labels_file = out / f"{arch}-labels.txt"
    labels_file.write_text("\n".join(labels) + "\n", encoding="utf-8")
    overrides = InputOverrides(
        labels_file=str(labels_file),
        input_size=f"{spec.height}x{spec.width}",
        color=spec.color,
        fit=spec.fit,
        interpolation=spec.interpolation,
    )
    for path, precision in ((fp32, "fp32"), (int8, "int8")):
        options = ExportOptions(
            precision=precision,
            overrides=overrides,
            calibration=images,
            calibration_count=CALIBRATION_COUNT,
            verify=images,
            verify_count=VERIFY_COUNT,  # the photos' folders are not labels: top-1 agreement gate
            latency=False,
            # Random weights leave top-1 margins of ~1e-3, so int8 flips a few of the 64 images
            # on some machines (2 of 64 once: 96.9% agreement, past the 1-point gate). Speed does
            # not depend on the weights: write it anyway; the export's warning is printed below.
            force=precision == "int8",
        )
        result = export_model(keras_path, path, options, log=lambda m: _say(f"  {m}"))
        for warning in result.report["warnings"]:
            _say(f"  warning: {warning}")
    return fp32, int8


def keras_model(arch: str, labels: tuple[str, ...], path: Path) -> object:
    """The ``arch`` network from ``edgecnn.train`` (random weights), saved to ``path``; cached."""
    from edgecnn import _deps
    from edgecnn.train.architectures import build_model

    keras = _deps.keras()
    if path.exists():
        return keras.models.load_model(path, compile=False)
    model = build_model(arch, len(labels))
    model.save(path)
    return model


def plant_models(folder: Path, images: Path) -> tuple[Path, Path, Path]:
    """``plant.keras`` and its fp32 / int8 ONNX exports under ``folder``."""
    from edgecnn.spec import InputSpec

    folder.mkdir(parents=True, exist_ok=True)
    keras_path = folder / "plant.keras"
    fp32, int8 = folder / "plant-fp32.onnx", folder / "plant-int8.onnx"
    if keras_path.exists() and fp32.exists() and int8.exists():
        return keras_path, fp32, int8
    keras_model("plant", PLANT_LABELS, keras_path)
    spec = InputSpec(**PLANT_SPEC)
    fp32, int8 = export_pair(keras_path, spec, PLANT_LABELS, "plant", images, folder)
    return keras_path, fp32, int8


def shapes_models(folder: Path, images: Path) -> tuple[Path, Path]:
    """The bundled shapes model (fp32, int8) when installed, else a stand-in ``edge`` export."""
    from importlib import resources

    assets = Path(str(resources.files("edgecnn") / "assets"))
    bundled = assets / "shapes-fp32.onnx", assets / "shapes-int8.onnx"
    if all(p.exists() for p in bundled):
        return bundled
    from edgecnn.data.shapes import SHAPE_LABELS
    from edgecnn.spec import InputSpec

    _say("the bundled shapes model is not built yet: using a stand-in `edge` export")
    folder.mkdir(parents=True, exist_ok=True)
    fp32, int8 = folder / "edge-fp32.onnx", folder / "edge-int8.onnx"
    if fp32.exists() and int8.exists():
        return fp32, int8
    keras_model("edge", SHAPE_LABELS, folder / "edge.keras")
    spec = InputSpec(96, 96, 3, "rgb", "crop", "bilinear")
    return export_pair(folder / "edge.keras", spec, SHAPE_LABELS, "edge", images, folder)
