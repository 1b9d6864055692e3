"""The architecture registry: the five tutorial networks plus ``edge``, with their habits.

Each :class:`Architecture` holds plain defaults (input size, colour, optimizer, learning rate,
loss, epochs, batch size, early stopping, augmentation) and a builder. Reading the registry
imports no TensorFlow; only :func:`build_model` does. Every model starts with an ``image`` Input
of float32 values in 0..255 followed by ``Rescaling(1/255)``, so the exported model takes
uint8-range images, and ends in a softmax except ``cifar10``, which keeps its tutorial logits
(``output="logits"``; export appends the softmax).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgecnn import _deps
from edgecnn.errors import EdgecnnError


@dataclass(frozen=True)
class Architecture:
    """A registered network and the training habits of the tutorial it comes from."""

    name: str
    summary: str
    builder: Callable[[Any, Any, int], Any] | None  # (keras, rescaled input, classes) -> outputs
    input_size: tuple[int, int]
    color: str = "rgb"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    loss: str = "categorical_crossentropy"
    output: str = "probabilities"
    epochs: int = 10
    batch_size: int = 32
    patience: int = 5
    monitor: str = "val_accuracy"
    augment: dict[str, float] = field(default_factory=dict)
    #: transfer learning: a ``keras.applications`` name, its keyword arguments, the rescale
    #: (scale, offset) from 0..255 it needs (None: it preprocesses itself), and how many of the
    #: epochs train the head alone before the top of the backbone is fine-tuned
    backbone: str | None = None
    backbone_options: dict[str, Any] = field(default_factory=dict)
    backbone_preprocess: tuple[float, float] | None = None
    head_epochs: int = 0

    @property
    def channels(self) -> int:
        """Input channels implied by the colour mode."""
        return 1 if self.color == "gray" else 3


def _block(k: Any, x: Any, filters: int, kernel: int, drop: float) -> Any:
    x = k.layers.Conv2D(filters, kernel, padding="same", activation="relu")(x)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.MaxPooling2D(2, padding="same")(x)
    return k.layers.Dropout(drop)(x)


def _plant(k: Any, x: Any, n: int) -> Any:
    for filters, kernel, drop in (
        (32, 3, 0.2),
        (64, 5, 0.2),
        (128, 3, 0.3),
        (256, 5, 0.3),
        (512, 3, 0.3),
    ):
        x = _block(k, x, filters, kernel, drop)
    x = k.layers.Flatten()(x)
    x = k.layers.Dense(2048, activation="relu")(x)
    x = k.layers.Dropout(0.5)(x)
    return k.layers.Dense(n, activation="softmax", name="probabilities")(x)


def _flowers(k: Any, x: Any, n: int) -> Any:
    for filters in (32, 64, 128):
        x = k.layers.Conv2D(filters, 3, activation="relu")(x)
        x = k.layers.MaxPooling2D(2)(x)
    x = k.layers.Flatten()(x)
    x = k.layers.Dense(512, activation="relu")(x)
    return k.layers.Dense(n, activation="softmax", name="probabilities")(x)


def _food(k: Any, x: Any, n: int) -> Any:
    for filters, kernel in ((32, 3), (64, 3), (128, 3), (512, 5)):
        x = k.layers.Conv2D(filters, kernel, padding="same", activation="relu")(x)
        x = k.layers.Conv2D(filters, kernel, padding="valid", activation="relu")(x)
        x = k.layers.MaxPooling2D(5 if filters == 512 else 2)(x)
        x = k.layers.Dropout(0.2)(x)
    x = k.layers.Flatten()(x)
    x = k.layers.Dense(1024, activation="relu")(x)
    x = k.layers.Dropout(0.2)(x)
    return k.layers.Dense(n, activation="softmax", name="probabilities")(x)


def _small(k: Any, x: Any, n: int, activation: str | None) -> Any:
    """mnist / cifar10: Conv 32/64/64 + Dense 64 (the two tutorials share the body)."""
    x = k.layers.Conv2D(32, 3, activation="relu")(x)
    x = k.layers.MaxPooling2D(2)(x)
    x = k.layers.Conv2D(64, 3, activation="relu")(x)
    x = k.layers.MaxPooling2D(2)(x)
    x = k.layers.Conv2D(64, 3, activation="relu")(x)
    x = k.layers.Flatten()(x)
    x = k.layers.Dense(64, activation="relu")(x)
    name = "probabilities" if activation else "logits"
    return k.layers.Dense(n, activation=activation, name=name)(x)


def _edge(k: Any, x: Any, n: int) -> Any:
    """Depthwise-separable stack (MobileNet-v1 style, ReLU6, BatchNorm) + global pooling.

    About 0.15 M parameters (0.6 MB). Resolution drops fast (96 -> 24 after two layers) since
    early full-resolution layers dominate CPU time; BatchNorm momentum 0.9 lets the moving
    statistics settle within the few hundred steps a small dataset gives.
    """
    L = k.layers

    def conv_bn(x: Any, filters: int, stride: int) -> Any:
        x = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        return L.ReLU(6.0)(L.BatchNormalization(momentum=0.9)(x))

    def separable(x: Any, filters: int, stride: int) -> Any:
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = L.ReLU(6.0)(L.BatchNormalization(momentum=0.9)(x))
        x = L.Conv2D(filters, 1, use_bias=False)(x)
        return L.ReLU(6.0)(L.BatchNormalization(momentum=0.9)(x))

    x = conv_bn(x, 24, 2)
    for filters, stride in ((32, 2), (64, 1), (64, 2), (128, 1), (128, 2), (256, 1), (256, 1)):
        x = separable(x, filters, stride)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dropout(0.2)(x)
    return L.Dense(n, activation="softmax", name="probabilities")(x)


_DEFAULT_AUGMENT = {
    "flip": 1,
    "rotation": 0.1,
    "brightness": 0.2,
    "contrast": 0.2,
    "zoom": 0.1,
    "translation": 0.1,
}

ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            "edge",
            "depthwise-separable CNN + BatchNorm + global pooling, ~0.15 M params (default)",
            _edge,
            (96, 96),
            optimizer="adam",
            learning_rate=2e-3,
            epochs=20,
            batch_size=32,
            patience=6,
            augment={**_DEFAULT_AUGMENT, "vflip": 1, "rotation": 0.5},
        ),
        Architecture(
            "plant",
            "Plant Disease: 5 Conv-ReLU-BN-MaxPool-Dropout blocks + Dense 2048",
            _plant,
            (256, 256),
            optimizer="rmsprop",
            learning_rate=1e-4,
            epochs=50,
            batch_size=16,
            patience=5,
            augment={"rotation": 0.3, "brightness": 0.45, "contrast": 0.5},
        ),
        Architecture(
            "flowers",
            "Flowers Recognition: Conv 32/64/128 + Dense 512",
            _flowers,
            (100, 100),
            optimizer="adam",
            learning_rate=1e-3,
            epochs=10,
            batch_size=32,
            patience=5,
            augment={"flip": 1, "rotation": 0.2, "translation": 0.2},
        ),
        Architecture(
            "food",
            "Food-101 (10 classes): paired 3x3 convs up to 5x5x512, Dense 1024",
            _food,
            (128, 128),
            optimizer="rmsprop",
            learning_rate=1e-4,
            epochs=100,
            batch_size=32,
            patience=10,
            monitor="val_loss",
            augment={
                "flip": 1,
                "vflip": 1,
                "rotation": 0.25,
                "translation": 0.5,
                "brightness": 0.3,
            },
        ),
        Architecture(
            "mnist",
            "MNIST digits: Conv 32/64/64 + Dense 64, grayscale",
            lambda k, x, n: _small(k, x, n, "softmax"),
            (28, 28),
            color="gray",
            optimizer="rmsprop",
            learning_rate=1e-3,
            epochs=5,
            batch_size=64,
            patience=3,
        ),
        Architecture(
            "cifar10",
            "CIFAR-10: Conv 32/64/64 + Dense 64, logits output",
            lambda k, x, n: _small(k, x, n, None),
            (32, 32),
            optimizer="adam",
            learning_rate=1e-3,
            loss="sparse_categorical_crossentropy_from_logits",
            output="logits",
            epochs=10,
            batch_size=64,
            patience=3,
        ),
    )
}


def _backbone(name: str, application: str, summary: str, **changes: Any) -> Architecture:
    """A Keras Applications backbone at its native 224x224, fine-tuned in two phases."""
    defaults: dict[str, Any] = {
        "input_size": (224, 224),
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "epochs": 12,
        "head_epochs": 4,
        "batch_size": 32,
        "patience": 3,
        "augment": {"flip": 1, "rotation": 0.1, "zoom": 0.1, "brightness": 0.2},
        "backbone": application,
    }
    return Architecture(name, summary, None, **{**defaults, **changes})


for _arch in (
    _backbone(
        "mobilenetv2",
        "MobileNetV2",
        "transfer learning: MobileNetV2 backbone (ImageNet weights), 2.3 M params",
        backbone_preprocess=(1 / 127.5, -1.0),
    ),
    _backbone(
        "mobilenetv3small",
        "MobileNetV3Small",
        "transfer learning: MobileNetV3Small backbone (ImageNet weights), 0.9 M params",
        backbone_options={"include_preprocessing": True},
    ),
    _backbone(
        "mobilenetv3large",
        "MobileNetV3Large",
        "transfer learning: MobileNetV3Large backbone (ImageNet weights), 3.0 M params",
        backbone_options={"include_preprocessing": True},
    ),
    _backbone(
        "efficientnetb0",
        "EfficientNetB0",
        "transfer learning: EfficientNetB0 backbone (ImageNet weights), 4.0 M params",
    ),
):
    ARCHITECTURES[_arch.name] = _arch
DEFAULT_ARCH = "edge"


def get_architecture(name: str) -> Architecture:
    """The registered architecture called ``name`` (clear error listing the choices)."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise EdgecnnError(
            f"unknown architecture {name!r}; choose from {', '.join(ARCHITECTURES)}"
        ) from None


def build_model(
    arch: str | Architecture,
    num_classes: int,
    input_size: tuple[int, int] | None = None,
    channels: int | None = None,
    weights: str = "imagenet",
) -> Any:
    """Build the Keras model: Input ``image`` (float32 0..255) -> Rescaling(1/255) -> network.

    A backbone architecture keeps 0..255 and its own preprocessing instead; ``weights``
    (imagenet, none or a file) only applies to those.
    """
    keras = _deps.keras()
    spec = arch if isinstance(arch, Architecture) else get_architecture(arch)
    if num_classes < 2:
        raise EdgecnnError(f"a classifier needs at least 2 classes, not {num_classes}")
    height, width = input_size or spec.input_size
    channels = channels or spec.channels
    inputs = keras.Input((height, width, channels), name="image")
    if spec.backbone is not None:
        from edgecnn.train import backbones

        if channels != 3:
            raise EdgecnnError(f"{spec.name} is an RGB backbone; it cannot take gray images")
        outputs = backbones.build(
            keras,
            inputs,
            spec.backbone,
            spec.backbone_options,
            num_classes,
            weights,
            spec.backbone_preprocess,
        )
        return keras.Model(inputs, outputs, name=spec.name)
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    try:
        outputs = spec.builder(keras, x, num_classes)  # type: ignore[misc]
    except ValueError as exc:  # a valid conv / pool ran out of pixels
        raise EdgecnnError(
            f"input size {height}x{width} is too small for architecture {spec.name!r} "
            f"(default {spec.input_size[0]}x{spec.input_size[1]}): {str(exc).splitlines()[0]}"
        ) from exc
    return keras.Model(inputs, outputs, name=spec.name)


def make_optimizer(name: str, learning_rate: float) -> Any:
    """Keras optimizer by name (adam, rmsprop, sgd)."""
    keras = _deps.keras()
    choices = {
        "adam": keras.optimizers.Adam,
        "rmsprop": keras.optimizers.RMSprop,
        "sgd": lambda learning_rate: keras.optimizers.SGD(learning_rate, momentum=0.9),
    }
    if name not in choices:
        raise EdgecnnError(f"unknown optimizer {name!r}; choose from {', '.join(choices)}")
    return choices[name](learning_rate=learning_rate)


def make_loss(name: str) -> Any:
    """The loss for integer class labels (equivalent to categorical CE on one-hot labels)."""
    keras = _deps.keras()
    from_logits = name.endswith("_from_logits")
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
