"""Tiny real Keras classifiers and generated image folders for the export / eval tests.

Images are drawn with OpenCV (filled circle, square or horizontal bar on a noisy background),
so a few-thousand-parameter CNN learns them in seconds and its predictions mean something.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

LABELS = ("bar", "circle", "square")
SIZE = 32


def draw(label: str, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """One BGR image of ``label``: a bright shape at a jittered place on a dark noisy ground."""
    image = rng.integers(0, 70, (size, size, 3)).astype(np.uint8)
    color = tuple(int(v) for v in rng.integers(140, 256, 3))
    cx, cy = (int(v) for v in rng.integers(size // 2 - 3, size // 2 + 4, 2))
    r = int(rng.integers(size // 5, size // 3))
    if label == "circle":
        cv2.circle(image, (cx, cy), r, color, -1)
    elif label == "square":
        cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), color, -1)
    else:
        cv2.rectangle(image, (2, cy - 2), (size - 3, cy + 2), color, -1)
    return image


def write_dataset(root: Path, per_split: dict[str, int], seed: int = 0) -> Path:
    """``root/<split>/<label>/*.png`` with ``per_split[split]`` images per class."""
    rng = np.random.default_rng(seed)
    for split, n in per_split.items():
        for label in LABELS:
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                cv2.imwrite(str(folder / f"{label}_{i:03d}.png"), draw(label, rng))
    return root


def arrays(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 images and class indices of one split (sorted, as the folders list them)."""
    images, labels = [], []
    for index, label in enumerate(LABELS):
        for path in sorted((root / split / label).glob("*.png")):
            images.append(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
            labels.append(index)
    return np.stack(images), np.array(labels)


def build(output: str = "logits", rescale: bool = True, dense: int = 32) -> Any:
    """Conv-pool-conv-pool-dense CNN on 32x32x3; 0..255 input when ``rescale`` (edgecnn's way)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs) if rescale else inputs
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(dense, activation="relu")(x)
    activation = "softmax" if output == "probabilities" else None
    outputs = keras.layers.Dense(len(LABELS), activation=activation)(x)
    return keras.Model(inputs, outputs)


def train(model: Any, images: np.ndarray, labels: np.ndarray, epochs: int = 8) -> Any:
    """A few epochs of Adam; inputs as the model expects them (float 0..255 or 0..1)."""
    import keras

    from_logits = model.layers[-1].get_config().get("activation") != "softmax"
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
    )
    model.fit(images, labels, epochs=epochs, batch_size=32, verbose=0, shuffle=True)
    return model


def write_run(run_dir: Path, model: Any, output: str, data: Path | None = None) -> Path:
    """A run folder for a model trained here (not by ``train()``): model.keras, labels and a
    :class:`~edgecnn.run_config.RunConfig` (the same type ``train()`` writes)."""
    from edgecnn.run_config import RunConfig, RunResult
    from edgecnn.spec import InputSpec

    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "model.keras")
    (run_dir / "labels.json").write_text(json.dumps({"labels": list(LABELS)}))
    validation = (
        tuple(
            (str(p), LABELS.index(p.parent.name))
            for p in sorted((data / "validation").rglob("*.png"))
        )
        if data
        else ()
    )
    RunConfig(
        labels=LABELS,
        input=InputSpec(SIZE, SIZE, 3, "rgb", "stretch", "bilinear"),
        output=output,
        architecture="tiny",
        validation=validation,
        result=RunResult(0.95, 0.2, 7, 8, 300, len(validation), 0, None, model.count_params(), 1),
    ).write(run_dir)
    return run_dir
