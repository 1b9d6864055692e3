"""Transfer learning: Keras Applications backbones with a new head, and their two-phase schedule.

A backbone model keeps the artifact contract: its ``image`` input takes 0..255 floats and the
backbone's own preprocessing is inside the model (MobileNetV3 and EfficientNet rescale
themselves; MobileNetV2 gets a ``Rescaling(1/127.5, offset=-1)``), so export needs no flags.
The backbone is called in inference mode (``training=False``), so its BatchNorm statistics stay
those it was trained with, also while its top layers are fine-tuned (Keras' transfer-learning
guide). Weights: ``imagenet`` (from Keras' cache, ``~/.keras/models``, downloaded there when a
network is reachable), ``none`` (random), or a path to a weights file of the backbone without
its top.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError

#: Name used for the nested backbone model inside the classifier.
BACKBONE_LAYER = "backbone"
#: Fraction of the backbone's layers (from the top) unfrozen in the fine-tuning phase.
FINE_TUNE_FRACTION = 0.3
#: The fine-tuning phase's learning rate, relative to the head phase's.
FINE_TUNE_LR_FACTOR = 0.1
WEIGHTS_CHOICES = ("imagenet", "none")


def keras_cache_dir() -> Path:
    """Where Keras looks for downloaded weights (``$KERAS_HOME/models``, ``~/.keras/models``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def build(
    keras: Any,
    inputs: Any,
    application: str,
    options: dict[str, Any],
    num_classes: int,
    weights: str,
    preprocess: tuple[float, float] | None,
) -> Any:
    """``inputs`` (0..255) -> [rescale] -> frozen backbone (avg pool) -> dropout -> softmax."""
    x = inputs
    if preprocess is not None:
        scale, offset = preprocess
        x = keras.layers.Rescaling(scale, offset=offset, name="preprocess")(x)
    base = _application(keras, application, options, tuple(inputs.shape[1:]), weights)
    base.trainable = False  # phase 1: the head only
    x = base(x, training=False)
    x = keras.layers.Dropout(0.2, name="head_dropout")(x)
    return keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)


def _application(
    keras: Any, application: str, options: dict[str, Any], shape: tuple[int, ...], weights: str
) -> Any:
    if weights not in WEIGHTS_CHOICES and not Path(weights).is_file():
        raise EdgecnnError(
            f"weights {weights!r} is neither imagenet, none nor an existing weights file"
        )
    constructor = getattr(keras.applications, application)
    try:
        base = constructor(
            include_top=False,
            weights=None if weights == "none" else weights,
            input_shape=shape,
            pooling="avg",
            **options,
        )
    except Exception as exc:
        raise _weights_error(application, weights, exc) from exc
    base.name = BACKBONE_LAYER
    return base


def _weights_error(application: str, weights: str, exc: Exception) -> EdgecnnError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    url = re.search(r"https?://[^\s:]+(?::\d+)?[^\s:]*", str(exc))
    if weights == "imagenet" and url:
        name = url.group(0).rsplit("/", 1)[-1]
        return EdgecnnError(
            f"{application}: the ImageNet weights are not in Keras' cache and could not be "
            f"downloaded ({text}). Download {url.group(0)} on a machine with network access "
            f"and put it at {keras_cache_dir() / name}, or pass weights as a file path, or "
            "train from scratch with weights 'none'"
        )
    return EdgecnnError(
        f"{application}: cannot build the backbone with weights {weights!r}: {text}"
    )


def unfreeze_top(model: Any, fraction: float = FINE_TUNE_FRACTION) -> int:
    """Phase 2: make the top ``fraction`` of the backbone's layers trainable (BatchNorm layers
    stay frozen); returns how many layers were unfrozen. Recompile afterwards."""
    keras_bn = "BatchNormalization"
    base = model.get_layer(BACKBONE_LAYER)
    base.trainable = True
    layers = base.layers
    first = int(len(layers) * (1 - fraction))
    count = 0
    for index, layer in enumerate(layers):
        top = index >= first and type(layer).__name__ != keras_bn
        layer.trainable = top
        count += int(top and bool(layer.weights))
    return count
