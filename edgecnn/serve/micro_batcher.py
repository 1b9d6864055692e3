"""Adaptive micro-batching: concurrent requests for one model share one inference call.

Each model has one :class:`MicroBatcher`. A request first takes a :class:`Ticket` for its
images (admission: when the images in flight would exceed ``max_queue`` it is refused at once
with :class:`QueueFull`, so the backlog never grows without bound), decodes them in the server's
thread pool, then hands the uint8 arrays to the batcher and awaits its probabilities.

The batcher's loop gathers queued jobs up to ``max_batch`` images. It waits (at most
``max_wait_ms`` after the first job) only while other admitted images are still being decoded,
i.e. only when more work is known to be on its way: a lone sequential client never waits, and
under load the batch fills while the previous batch runs. Inference runs in one thread per
model (onnxruntime releases the GIL), so the event loop never blocks on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from edgecnn.runtime.classifier import Classifier

#: Called after each batch: (images in the batch, queue seconds per job, inference seconds).
BatchObserver = Callable[[int, list[float], float], None]


class QueueFull(Exception):
    """The model's queue is full: the request is refused (the server answers 503)."""


@dataclass
class _Job:
    arrays: np.ndarray
    future: asyncio.Future[tuple[np.ndarray, float]]
    queued_at: float = field(default_factory=time.perf_counter)


class Ticket:
    """Admission for ``count`` images of one request; release it when the request ends."""

    def __init__(self, batcher: MicroBatcher, count: int) -> None:
        self._batcher = batcher
        self.count = count
        self._coming = count  # admitted images not yet handed to the batcher
        self._released = False

    async def infer(self, arrays: list[np.ndarray]) -> tuple[np.ndarray, float]:
        """Probabilities ``[len(arrays), classes]`` and this request's inference share (ms
        per image). ``arrays`` are the request's decoded images (its failed ones left out)."""
        self._batcher.coming -= self._coming
        self._coming = 0
        if not arrays:
            return np.empty((0, self._batcher.classifier.spec.num_classes), np.float32), 0.0
        batch = arrays[0][np.newaxis] if len(arrays) == 1 else np.stack(arrays)
        return await self._batcher.submit(batch)

    def release(self) -> None:
        """Give the admission back (idempotent)."""
        if not self._released:
            self._released = True
            self._batcher.coming -= self._coming
            self._batcher.in_flight -= self.count
            self._coming = 0


class MicroBatcher:
    """Gathers the jobs of concurrent requests into batches for one :class:`Classifier`."""

    def __init__(
        self,
        classifier: Classifier,
        *,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        observer: BatchObserver | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        self.classifier = classifier
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1e3
        self.max_queue = max_queue
        self._observer = observer
        #: images admitted and not yet answered (decoding, queued or running)
        self.in_flight = 0
        #: images admitted whose decoding has not finished: the batcher waits for these only
        self.coming = 0
        self._jobs: deque[_Job] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._runner = ThreadPoolExecutor(1, thread_name_prefix="edgecnn-infer")

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Warm the model up (its first run allocates), then start the batching loop."""
        loop = asyncio.get_running_loop()
        blank = np.zeros((1, *self.classifier.spec.input.shape), np.uint8)
        await loop.run_in_executor(self._runner, self.classifier.run, blank)
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._loop())

    async def stop(self) -> None:
        """Finish the queued jobs, then stop the loop and the inference thread."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            await self._task
        self._runner.shutdown(wait=True)

    # ----------------------------------------------------------------- requests
    def admit(self, count: int) -> Ticket:
        """Reserve room for ``count`` images or raise :class:`QueueFull`."""
        if self._stopping or self.in_flight + count > self.max_queue:
            raise QueueFull(
                f"{self.in_flight} images in flight, limit {self.max_queue}; retry shortly"
            )
        self.in_flight += count
        self.coming += count
        return Ticket(self, count)

    async def submit(self, arrays: np.ndarray) -> tuple[np.ndarray, float]:
        """Queue one job (uint8 ``[N, H, W, C]``) and await its rows and inference ms/image."""
        if self._wake is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        job = _Job(arrays, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._wake.set()
        return await job.future

    @property
    def queued(self) -> int:
        """Images waiting for a batch."""
        return sum(len(job.arrays) for job in self._jobs)

    # ----------------------------------------------------------------- the loop
    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            if not self._jobs:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = await self._gather()
            if batch:
                await self._run(batch)

    async def _gather(self) -> list[_Job]:
        """Take queued jobs up to ``max_batch`` images, waiting only for images on their way."""
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        batch: list[_Job] = []
        size = 0
        while True:
            while self._jobs and (not batch or size + len(self._jobs[0].arrays) <= self.max_batch):
                job = self._jobs.popleft()
                if job.future.done():  # the request timed out or its client went away
                    continue
                batch.append(job)
                size += len(job.arrays)
            remaining = deadline - loop.time()
            if size >= self.max_batch or self._jobs or self.coming <= 0 or remaining <= 0:
                return batch
            if self._stopping and not batch:
                return batch
            self._wake.clear()
            # asyncio.TimeoutError: on 3.10 not yet the builtin TimeoutError
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)

    async def _run(self, batch: list[_Job]) -> None:
        started = time.perf_counter()
        stacked = batch[0].arrays if len(batch) == 1 else np.concatenate([j.arrays for j in batch])
        try:
            probs = await asyncio.get_running_loop().run_in_executor(
                self._runner, self.classifier.run, stacked
            )
        except Exception as exc:  # a failing batch answers its requests, the loop goes on
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        seconds = time.perf_counter() - started
        share_ms = seconds * 1e3 / len(stacked)
        offset = 0
        for job in batch:
            rows = probs[offset : offset + len(job.arrays)]
            offset += len(job.arrays)
            if not job.future.done():
                job.future.set_result((rows, share_ms))
        if self._observer is not None:
            self._observer(len(stacked), [started - job.queued_at for job in batch], seconds)
