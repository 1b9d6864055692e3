"""Keras training of the seed architectures (TensorFlow is imported only when training runs).

``from edgecnn.train import train`` is cheap: the registry and the data code import no
TensorFlow; :func:`train` and :func:`build_model` import it when called and raise
:class:`~edgecnn.errors.MissingDependencyError` when it is not installed.
"""

from edgecnn.train.architectures import (
    ARCHITECTURES,
    DEFAULT_ARCH,
    Architecture,
    build_model,
    get_architecture,
)
from edgecnn.train.train_settings import TrainOptions
from edgecnn.train.trainer import RUN_FILES, TrainResult, train

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_ARCH",
    "RUN_FILES",
    "Architecture",
    "TrainOptions",
    "TrainResult",
    "build_model",
    "get_architecture",
    "train",
]
