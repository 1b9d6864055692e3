"""Shared fixtures: tiny real ONNX models and real image files written by OpenCV."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.models import color_model, save

BGR = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}


def write_color_image(path: Path | str, color: str, size: tuple[int, int] = (40, 60)) -> Path:
    """A solid-colour image file (format from the suffix) whose true label is ``color``.

    Encodes in memory: cv2.imwrite crashes on file names that are not valid UTF-8.
    """
    image = np.zeros((*size, 3), np.uint8)
    image[:] = BGR[color]
    ok, data = cv2.imencode(os.path.splitext(os.fsdecode(path))[1], image)
    assert ok, path
    with open(path, "wb") as fh:
        fh.write(data.tobytes())
    return Path(path)


@pytest.fixture(autouse=True, scope="session")
def _engine_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Compiled OpenVINO models / TensorRT engines go to a temporary folder, not ~/.cache."""
    os.environ["EDGECNN_CACHE"] = str(tmp_path_factory.mktemp("engine-cache"))


@pytest.fixture
def color_model_path(tmp_path: Path) -> Path:
    """An edgecnn-contract ONNX model classifying red / green / blue."""
    return save(color_model(), tmp_path / "color.onnx")


@pytest.fixture
def color_folder(tmp_path: Path) -> Path:
    """A folder of 9 images, 3 per colour, in JPEG / PNG / BMP, named so sorting is known."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i, color in enumerate(["red", "green", "blue"] * 3):
        ext = ["jpg", "png", "bmp"][i % 3]
        write_color_image(folder / f"{i:02d}_{color}.{ext}", color)
    return folder
