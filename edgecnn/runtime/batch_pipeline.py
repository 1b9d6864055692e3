"""The classify pipeline: decode workers -> ordered batches -> inference -> predictions.

onnxruntime's ``run`` releases the GIL and so does OpenCV's decoding, so worker threads decode
the next images while the session runs the current batch. The queue of images in flight is
bounded (``lookahead``), so memory stays flat however many inputs there are, and results come
out in input order, one per input, errors included.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from edgecnn.classify.input_discovery import Item
from edgecnn.errors import ImageError
from edgecnn.heap import return_freed_memory
from edgecnn.preprocess import MAX_PIXELS, ImageInput, decode, describe_source, prepare
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


#: Default bound on the decoded bytes in flight across decode workers (see DecodeBudget):
#: four 12-megapixel photos at once, or one very large image alone.
DECODE_BUDGET = 256 * 1024 * 1024


#: After a decode that reserved at least this much, freed heap memory goes back to the system.
TRIM_FROM = 16 * 1024 * 1024


@dataclass(frozen=True)
class Loaded:
    """One input after the worker stage: the model-ready array, or the error."""

    source: str
    array: np.ndarray | None
    error: str | None
    timings: dict[str, float]


def load_one(
    source: ImageInput,
    spec: InputSpec,
    color_order: str = "bgr",
    *,
    max_pixels: int = MAX_PIXELS,
    budget: DecodeBudget | None = None,
) -> Loaded:
    """Decode + prepare one image, timing each step; never raises for a bad image.

    With a ``budget``, what decoding will hold is reserved before decoding and released once
    the image is prepared (a worker waits while other workers hold the budget).
    """
    name = describe_source(source)
    held: list[int] = []

    def reserve(size: int) -> None:
        held.append(budget.acquire(size))

    t0 = time.perf_counter()
    try:
        decoded = decode(
            source,
            spec,
            color_order=color_order,
            max_pixels=max_pixels,
            reserve=None if budget is None else reserve,
        )
        t1 = time.perf_counter()
        array = prepare(decoded, spec)
        del decoded
    except ImageError as exc:
        return Loaded(name, None, exc.reason, {})
    except Exception as exc:  # one bad file must never stop a run
        return Loaded(name, None, f"unexpected {type(exc).__name__}: {exc}", {})
    finally:
        if budget is not None:
            for size in held:
                budget.release(size)
            if sum(held) >= TRIM_FROM:
                return_freed_memory()
    t2 = time.perf_counter()
    timings = {"decode": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3}
    return Loaded(name, array, None, timings)


def load_item(
    item: Item,
    spec: InputSpec,
    *,
    max_pixels: int = MAX_PIXELS,
    budget: DecodeBudget | None = None,
) -> Loaded:
    """Worker stage: :func:`load_one` for a discovered item (or its error, already known)."""
    if item.error is not None or item.path is None:
        return Loaded(item.source, None, item.error or "no path", {})
    loaded = load_one(item.path, spec, max_pixels=max_pixels, budget=budget)
    return replace(loaded, source=item.source)


class DecodeBudget:
    """Bytes of decoded images allowed in memory at once, shared by the decode workers.

    A small file can decode to hundreds of MB (a 420 kB PNG -> 432 MB): without a bound, N
    workers decoding N such files at once need N times that. A worker reserves its image's
    decoded size before decoding and waits while the others hold the budget; an image larger
    than the whole budget is decoded alone.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the decode budget must be >= 1 byte, not {limit}")
        self.limit = limit
        self._used = 0
        self._cond = threading.Condition()

    def acquire(self, size: int) -> int:
        """Wait until ``size`` bytes (at most the whole budget) are free; return what was held."""
        size = max(0, min(size, self.limit))
        with self._cond:
            while self._used + size > self.limit:
                self._cond.wait()
            self._used += size
        return size

    def release(self, size: int) -> None:
        """Give back what :meth:`acquire` returned."""
        with self._cond:
            self._used -= size
            self._cond.notify_all()


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
        max_pixels: int = MAX_PIXELS,
        decode_budget: int = DECODE_BUDGET,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, not {workers}")
        self.classifier = classifier
        self.batch_size = batch_size
        self.workers = workers or available_cores()
        self.top_k = top_k
        self.max_pixels = max_pixels
        self.budget = DecodeBudget(decode_budget)
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
                    pending.append(pool.submit(load_item, item, spec, **options))

        options = {"max_pixels": self.max_pixels, "budget": self.budget}
        with ThreadPoolExecutor(self.workers, thread_name_prefix="edgecnn-decode") as pool:
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
