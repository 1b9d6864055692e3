"""The README's Python API example runs as written (issue 15 item 1: ``load_image(x, clf.spec)``).

The example names placeholder inputs (``photo.jpg``, ``photos/``, ``clip.mp4``, ``frame1``,
``uint8_nhwc_batch``); the test creates them, then executes the block that starts with
``import edgecnn``. The client and Ray blocks need a server / a cluster: their modules' own
tests run them.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgecnn
from tests.conftest import write_color_image

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_python_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = [b for b in python_blocks() if b.startswith("import edgecnn\n")]
    assert "load_image(" in block and "clf.spec" in block
    monkeypatch.chdir(tmp_path)
    write_color_image(tmp_path / "photo.jpg", "red", (60, 80))
    (tmp_path / "photos").mkdir()
    for color in ("red", "green"):
        write_color_image(tmp_path / "photos" / f"{color}.png", color, (40, 40))
    writer = cv2.VideoWriter("clip.mp4", cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for _ in range(5):
        writer.write(np.full((48, 64, 3), (0, 0, 255), np.uint8))
    writer.release()
    frame = np.full((48, 64, 3), 128, np.uint8)
    clf = edgecnn.Classifier.load(provider="cpu")
    batch = np.zeros((2, *clf.spec.input.shape), np.uint8)
    namespace = {"frame1": frame, "frame2": frame, "uint8_nhwc_batch": batch}
    exec(compile(block, str(README), "exec"), namespace)
    assert namespace["pixels"].shape == clf.spec.input.shape
    assert namespace["probs"].shape == (2, clf.spec.num_classes)


def test_load_image_takes_model_or_input_spec() -> None:
    clf = edgecnn.Classifier.load(provider="cpu")
    image = np.full((30, 50, 3), 200, np.uint8)
    via_model = edgecnn.load_image(image, clf.spec)
    assert np.array_equal(via_model, edgecnn.load_image(image, clf.spec.input))
    with pytest.raises(edgecnn.EdgecnnError, match=r"ModelSpec \(clf\.spec\) or an InputSpec"):
        edgecnn.load_image(image, {"height": 8})
