"""A real engine that counts what it runs: for tests that the work is done once, not twice."""

from __future__ import annotations

import numpy as np

from edgecnn.runtime.engines.base import Engine, TensorInfo


class CountingEngine(Engine):
    """Runs ``inner`` (a real engine) and records each batch's size; ``inputs`` can be given to
    declare another input shape than the inner engine's."""

    def __init__(self, inner: Engine, inputs: list[TensorInfo] | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.inputs = inputs if inputs is not None else inner.inputs
        self.outputs = inner.outputs
        self.metadata = inner.metadata
        self.precision = getattr(inner, "precision", "f32")
        self.sizes: list[int] = []

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.sizes.append(len(batch))
        return self.inner.run(batch)

    @property
    def provider(self) -> str:
        return self.inner.provider

    def describe(self) -> str:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()
