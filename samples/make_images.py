"""Regenerate samples/images: two drawn shapes per class of the bundled model, at photo-like
sizes, from a seed the bundled model's training data never used (its build uses 0 and 1000).

    python samples/make_images.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgecnn.data.shapes import SHAPE_LABELS, draw_shape

SEED = 2026
SIZES = ((512, 512), (600, 600))  # square, as the model was trained: `crop` keeps the centre


def main() -> None:
    folder = Path(__file__).parent / "images"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(SEED)
    for label in SHAPE_LABELS:
        for number, size in enumerate(SIZES, 1):
            image = draw_shape(label, size, rng)
            path = folder / f"{label}-{number}.jpg"
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 88])
            assert ok
            path.write_bytes(data.tobytes())
            print(path)


if __name__ == "__main__":
    main()
