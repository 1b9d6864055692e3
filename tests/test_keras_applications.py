"""Export of Keras Applications classifiers brought from elsewhere (a .keras file + flags).

Each family is built with ``weights=None`` at a small input size, then brought to life so that
its outputs depend on the image (an untrained network answers the same for every image, which
export refuses): BatchNorm statistics are set from real images and its scales and shifts made
non-trivial (LayerNormalization's too, and ConvNeXt's layer scales, 1e-6 at initialisation,
raised so that its blocks count), and the classifier layer is fitted by least squares on the
backbone's features of generated colour photos (train and validation: random features do not
generalise from a few dozen images, and this test is about export fidelity, not learning). The
export then has to meet the fp32 gate: top-1 parity with Keras >= 99.9% on varied images. The
int8 accuracy gate runs against the labelled validation images; an untrained backbone's
features carry the class in small differences that int8 noise can swamp (measured: MobileNetV2
loses 6-35 points), so the export runs with ``force`` and the test checks that the gate's
verdict matches the drop.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SIZE = 64
LABELS = ("blue", "green", "red", "yellow")
COLORS_BGR = ((230, 60, 40), (50, 210, 60), (40, 50, 230), (40, 220, 230))

#: name -> (constructor keyword arguments, export normalization (scale, mean, std), color)
FAMILIES: dict[str, tuple[dict[str, Any], tuple[str | None, str | None, str | None], str]] = {
    # MobileNetV2 expects -1..1 (its preprocess_input): x / 127.5 - 1
    "MobileNetV2": ({"alpha": 0.35}, ("1/127.5", "1", None), "rgb"),
    # MobileNetV3 and EfficientNet rescale inside the model (include_preprocessing)
    "MobileNetV3Small": ({"alpha": 0.75, "include_preprocessing": True}, (None, None, None), "rgb"),
    "EfficientNetB0": ({}, (None, None, None), "rgb"),
    # ResNet50: 'caffe' preprocessing, BGR order and ImageNet means
    "ResNet50": ({}, (None, "103.939,116.779,123.68", None), "bgr"),
    # DenseNet121: 'torch' preprocessing, 0..1 then ImageNet mean / std
    "DenseNet121": ({}, ("1/255", "0.485,0.456,0.406", "0.229,0.224,0.225"), "rgb"),
    # ConvNeXtTiny: ImageNet mean / std inside the model (a Normalization layer, folded);
    # LayerNormalization and GELU (erf) instead of BatchNorm and ReLU
    "ConvNeXtTiny": ({}, (None, None, None), "rgb"),
}


def _draw(color: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """A BGR photo-like image: a shape of roughly ``color`` on a noisy, shaded background."""
    import cv2

    base = rng.integers(20, 200)
    image = np.clip(rng.normal(base, 25, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    tint = tuple(int(np.clip(c + rng.integers(-40, 41), 0, 255)) for c in color)
    center = tuple(int(v) for v in rng.integers(16, SIZE - 16, 2))
    radius = int(rng.integers(10, 24))
    if rng.random() < 0.5:
        cv2.circle(image, center, radius, tint, -1)
    else:
        cv2.rectangle(
            image,
            (center[0] - radius, center[1] - radius),
            (center[0] + radius, center[1] + radius),
            tint,
            -1,
        )
    return cv2.GaussianBlur(image, (3, 3), 0)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/ and validation/ folders of varied PNG photos, one class per dominant colour
    (what a random-feature backbone separates with a wide margin)."""
    import cv2

    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(3)
    for split in ("train", "validation"):
        for label, color in zip(LABELS, COLORS_BGR, strict=True):
            (root / split / label).mkdir(parents=True)
            for i in range(20):
                cv2.imwrite(str(root / split / label / f"{i:02d}.png"), _draw(color, rng))
    return root


def _images(root: Path, split: str, spec: Any) -> tuple[np.ndarray, np.ndarray]:
    from edgecnn.preprocess import load_image

    images, targets = [], []
    for index, label in enumerate(LABELS):
        for path in sorted((root / split / label).iterdir()):
            images.append(load_image(path, spec))
            targets.append(index)
    return np.stack(images), np.array(targets)


def _layers(model: Any) -> list[Any]:
    """Every layer, those of nested models included (ConvNeXt's stem and downsampling)."""
    found = []
    for layer in model.layers:
        found.append(layer)
        if hasattr(layer, "layers"):
            found.extend(_layers(layer))
    return found


def _bring_to_life(model: Any, images: np.ndarray, targets: np.ndarray) -> None:
    """BatchNorm statistics from real images with random scales / shifts (LayerNormalization and
    ConvNeXt's layer scales: random), and a classifier layer fitted (ridge regression) on the
    backbone's features of labelled images."""
    import keras

    rng = np.random.default_rng(0)
    for layer in _layers(model):
        if isinstance(layer, keras.layers.LayerNormalization):
            gamma, beta = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.6, 1.4, gamma.shape).astype(np.float32),
                    rng.normal(0.0, 0.1, beta.shape).astype(np.float32),
                ]
            )
        elif type(layer).__name__ == "LayerScale":
            (gamma,) = layer.get_weights()
            layer.set_weights([rng.uniform(0.1, 0.5, gamma.shape).astype(np.float32)])
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        gamma, beta, _, _ = layer.get_weights()
        layer.set_weights(
            [
                rng.uniform(0.6, 1.4, gamma.shape).astype(np.float32),
                rng.normal(0.0, 0.1, beta.shape).astype(np.float32),
                np.zeros_like(gamma),
                np.ones_like(gamma),
            ]
        )
        layer.momentum = 0.0  # one training-mode call sets the moving statistics to this batch's
    model(images[::2], training=True)
    head = next(
        layer for layer in reversed(model.layers) if getattr(layer, "kernel", None) is not None
    )
    features = keras.Model(model.inputs, head.input)(images, training=False)
    features = np.asarray(features, np.float64).reshape(len(images), -1)
    mean, std = features.mean(axis=0), features.std(axis=0) + 1e-6
    z = (features - mean) / std
    onehot = np.eye(len(LABELS))[targets] * 8.0 - 2.0
    w = np.linalg.solve(z.T @ z + 10.0 * np.eye(z.shape[1]), z.T @ onehot)
    kernel = (w / std[:, None]).astype(np.float32)
    bias = (-(mean / std) @ w).astype(np.float32)
    head.set_weights([kernel.reshape(head.kernel.shape), bias])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_keras_application_exports_with_parity_and_int8_gate(
    family: str, shapes: Path, tmp_path: Path
) -> None:
    import keras

    from edgecnn.export import ExportOptions, export_model
    from edgecnn.export.model_source import InputOverrides
    from edgecnn.normalization import parse_normalization
    from edgecnn.spec import InputSpec

    kwargs, (scale, mean, std), color = FAMILIES[family]
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, family)(
        weights=None, input_shape=(SIZE, SIZE, 3), classes=len(LABELS), **kwargs
    )
    normalization = parse_normalization(scale, mean, std)
    spec = InputSpec(SIZE, SIZE, 3, color, "crop", "area")
    train, train_targets = _images(shapes, "train", spec)
    val, val_targets = _images(shapes, "validation", spec)
    images = normalization.apply(np.concatenate([train, val]))
    _bring_to_life(model, images, np.concatenate([train_targets, val_targets]))
    model.save(tmp_path / "model.keras")
    (tmp_path / "labels.json").write_text(json.dumps(list(LABELS)))

    options = ExportOptions(
        precision="int8",
        overrides=InputOverrides(
            labels_file=str(tmp_path / "labels.json"),
            input_size=f"{SIZE}x{SIZE}",
            color=color,
            interpolation="area",
        ),
        normalization=normalization,
        calibration=shapes / "train",
        verify=shapes / "validation",
        latency=False,
        force=True,  # int8 of an untrained backbone may fail the gate: it must say so
    )
    result = export_model(tmp_path / "model.keras", tmp_path / "model.onnx", options)
    report = result.report
    fp32 = report["fp32_parity"]
    assert fp32["images"] == 80 and fp32["top1_agreement"] >= 0.999, fp32
    assert fp32["accuracy_reference"] > 0.8, fp32  # outputs differ between images
    int8 = report["verification"]
    drop = 100 * (int8["accuracy_keras"] - int8["accuracy"])
    gate = [w for w in report["warnings"] if "int8-static model loses" in w]
    assert bool(gate) == (drop > 1.0), (drop, report["warnings"])  # the gate is enforced
    assert not [w for w in report["warnings"] if "dead" in w or "chance" in w]

    import onnx

    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["image"]  # constants folded, not inputs
