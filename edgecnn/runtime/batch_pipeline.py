"""The classify pipeline: decode workers -> ordered batches -> inference -> predictions.

onnxruntime's ``run`` releases the GIL and so does OpenCV's decoding, so worker threads decode
the next images while the session runs the current batch. The queue of images in flight is
bounded (``lookahead``), so memory stays flat however many inputs there are, and results come
out in input order, one per input, errors included.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

import cv2
import numpy as np

from edgecnn.classify.input_discovery import Item
from edgecnn.errors import ImageError
from edgecnn.preprocess import ImageInput, decode, describe_source, prepare
from edgecnn.runtime.prediction import Prediction
from edgecnn.spec import InputSpec, ModelSpec
from edgecnn.tools.machine import available_cores


class BatchModel(Protocol):
    """What the pipeline needs of a model (:class:`~edgecnn.runtime.classifier.Classifier` is
    one): its spec, and inference on the prepared images of one batch."""

    spec: ModelSpec

    def finish_batch(
        self,
        sources: Sequence[str],
        prepared: Sequence[np.ndarray | None],
        errors: Sequence[str | None],
        timings: Sequence[dict[str, float]],
        top_k: int,
    ) -> list[Prediction]:
        """Run the batch and build one prediction per source (errors included)."""
        ...


@dataclass(frozen=True)
class Loaded:
    """One input after the worker stage: the model-ready array, or the error."""

    source: str
    array: np.ndarray | None
    error: str | None
    timings: dict[str, float]


def load_one(source: ImageInput, spec: InputSpec, color_order: str = "bgr") -> Loaded:
    """Decode + prepare one image, timing each step; never raises for a bad image."""
    name = describe_source(source)
    t0 = time.perf_counter()
    try:
        decoded = decode(source, spec, color_order=color_order)
        t1 = time.perf_counter()
        array = prepare(decoded, spec)
    except ImageError as exc:
        return Loaded(name, None, exc.reason, {})
    except Exception as exc:  # one bad file must never stop a run
        return Loaded(name, None, f"unexpected {type(exc).__name__}: {exc}", {})
    t2 = time.perf_counter()
    timings = {"decode": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3}
    return Loaded(name, array, None, timings)


def load_item(item: Item, spec: InputSpec) -> Loaded:
    """Worker stage: :func:`load_one` for a discovered item (or its error, already known)."""
    if item.error is not None or item.path is None:
        return Loaded(item.source, None, item.error or "no path", {})
    return replace(load_one(item.path, spec), source=item.source)


@contextlib.contextmanager
def _opencv_single_threaded() -> Iterator[None]:
    # Parallelism comes from the workers; OpenCV's own pool would oversubscribe the cores.
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


class Pipeline:
    """Classify a stream of :class:`Item` with a :class:`BatchModel` (a Classifier), decoding
    in threads."""

    def __init__(
        self,
        classifier: BatchModel,
        *,
        batch_size: int = 16,
        workers: int | None = None,
        top_k: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, not {workers}")
        self.classifier = classifier
        self.batch_size = batch_size
        self.workers = workers or available_cores()
        self.top_k = top_k
        #: images decoded ahead of inference: enough to keep every worker busy for two batches
        self.lookahead = 2 * batch_size + self.workers

    def run(self, items: Iterable[Item]) -> Iterator[Prediction]:
        """Yield one prediction per item, in order, as batches complete."""
        spec = self.classifier.spec.input
        source = iter(items)
        pending: deque[Future[Loaded] | Loaded] = deque()

        def refill(pool: ThreadPoolExecutor) -> None:
            while len(pending) < self.lookahead:
                item = next(source, None)
                if item is None:
                    return
                if item.error is not None:
                    pending.append(load_item(item, spec))
                else:
                    pending.append(pool.submit(load_item, item, spec))

        with (
            _opencv_single_threaded(),
            ThreadPoolExecutor(self.workers, thread_name_prefix="edgecnn-decode") as pool,
        ):
            try:
                refill(pool)
                while pending:
                    batch: list[Loaded] = []
                    while pending and len(batch) < self.batch_size:
                        head = pending.popleft()
                        batch.append(head.result() if isinstance(head, Future) else head)
                        refill(pool)
                    yield from self.classifier.finish_batch(
                        [x.source for x in batch],
                        [x.array for x in batch],
                        [x.error for x in batch],
                        [x.timings for x in batch],
                        self.top_k,
                    )
            finally:
                for head in pending:  # stopped early (break, Ctrl-C): drop queued work
                    if isinstance(head, Future):
                        head.cancel()
