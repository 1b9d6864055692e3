"""``auto`` on a CPU: several engines race on the real batches, the fastest one runs them.

Which engine is fastest depends on the batch size, the model and on what else the machine is
doing: measured on this project's 2-core box, onnxruntime with spinning threads is the fastest
on single frames of the small bundled model when the machine is quiet and 3x slower than
OpenVINO when other processes share the cores; OpenVINO THROUGHPUT wins batches. So instead of
a fixed rule, :class:`RacingEngine` keeps the candidates ``auto`` picked and, per batch-size
class (1, 2-3, 4-7, 8-15, ...), runs the first batches on each in turn (the first run of each
is a warm-up and does not count), then sends every batch to the one with the lowest mean time
per image, and re-times one other candidate every :data:`EXPLORE_EVERY` batches so a change of
load is followed. The choice is visible at all times: :attr:`RacingEngine.provider` and
:meth:`RacingEngine.describe` name the current winner of each batch-size class and its numbers.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgecnn.runtime.engines.base import Engine

#: Timed runs per candidate before the race of a batch-size class is decided.
SAMPLES = 4
#: Untimed first runs of each candidate in each batch-size class (allocations for the shape,
#: request creation, thread pools waking up: measured up to 100x a steady run).
WARMUP_RUNS = 2
#: After the race, another candidate is re-timed when both this many batches and
#: :data:`EXPLORE_SECONDS` have passed since the last re-timing.
EXPLORE_EVERY = 16
EXPLORE_SECONDS = 3.0
#: Per-image times remembered per candidate (the mean of these decides).
WINDOW = 5
#: One timed sample spans consecutive runs of at least this long: a single 0.2 ms run of a
#: small model is mostly timer and scheduler noise.
SAMPLE_SECONDS = 0.02


def bucket(batch_size: int) -> int:
    """Batch-size class: 1, 2-3, 4-7, 8-15, ... (numbered 0, 1, 2, 3, ...)."""
    return max(1, batch_size).bit_length() - 1


def bucket_label(index: int) -> str:
    """``batch 1``, ``batch 2-3``, ``batch 4-7``, ..."""
    low, high = 1 << index, (2 << index) - 1
    return f"batch {low}" if low == high else f"batch {low}-{high}"


@dataclass
class Race:
    """The race of one batch-size class.

    A run is timed only when the same candidate also ran the batch before it: the first run
    after a switch pays for the previous engine's threads going idle (onnxruntime's spin) and
    for cold caches, and would make whichever engine runs second look slow. So each candidate
    runs a stretch of batches while racing, and a re-timing takes two batches (one untimed).
    """

    candidates: int
    clock: Callable[[], float] = time.monotonic
    times: list[deque[float]] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)
    last: int | None = None
    since_explore: int = 0
    explored_at: float = 0.0
    rotation: int = 0
    pending: int | None = None
    stretch: list[float] = field(default_factory=lambda: [0.0, 0.0])  # seconds, images

    def __post_init__(self) -> None:
        self.times = [deque(maxlen=WINDOW) for _ in range(self.candidates)]
        self.runs = [0] * self.candidates
        self.explored_at = self.clock()

    def pick(self) -> int:
        """The candidate for the next batch."""
        if self.pending is not None:  # a re-timing: until its sample is complete
            return self.pending
        unfinished = [i for i in range(self.candidates) if len(self.times[i]) < SAMPLES]
        if unfinished:  # still racing: stay on the current candidate until it has its samples
            return self.last if self.last in unfinished else unfinished[0]
        best = self.best()
        self.since_explore += 1
        due = self.since_explore >= EXPLORE_EVERY and (
            self.clock() - self.explored_at >= EXPLORE_SECONDS
        )
        if self.candidates > 1 and due:
            self.since_explore, self.explored_at = 0, self.clock()
            others = [i for i in range(self.candidates) if i != best]
            self.rotation += 1
            self.pending = others[self.rotation % len(others)]
            return self.pending
        return best

    def record(self, index: int, seconds: float, images: int = 1) -> None:
        """One run's time. Runs count once the candidate is warm and also ran the batch
        before; consecutive ones add up to a sample of at least :data:`SAMPLE_SECONDS`."""
        self.runs[index] += 1
        if index != self.last:
            self.last, self.stretch = index, [0.0, 0.0]
            return
        if self.runs[index] <= WARMUP_RUNS:
            return
        self.stretch[0] += seconds
        self.stretch[1] += images
        if self.stretch[0] >= SAMPLE_SECONDS:
            self.times[index].append(self.stretch[0] / self.stretch[1])
            self.stretch = [0.0, 0.0]
            if self.pending == index:
                self.pending = None

    def best(self) -> int:
        """The candidate with the lowest mean time per image over its recent timed runs (the
        mean, not the median: a run delayed by other processes costs throughput too)."""
        timed = [i for i in range(self.candidates) if self.times[i]]
        if not timed:
            return 0
        return min(timed, key=lambda i: statistics.fmean(self.times[i]))

    def decided(self) -> bool:
        """True once every candidate has its timed runs."""
        return all(len(t) >= SAMPLES for t in self.times)


class RacingEngine(Engine):
    """Candidates over one model; per batch-size class the fastest measured one runs."""

    name = "auto"

    def __init__(self, openers: Sequence[Callable[[], Engine]], labels: Sequence[str]) -> None:
        if not openers:
            raise ValueError("a race needs at least one candidate")
        self._openers = list(openers)
        self.labels = list(labels)
        first = self._openers[0]()
        self._engines: list[Engine | None] = [first] + [None] * (len(openers) - 1)
        self.inputs, self.outputs, self.metadata = first.inputs, first.outputs, first.metadata
        self._races: dict[int, Race] = {}
        self._lock = threading.Lock()
        self._open_lock = threading.Lock()

    def _engine(self, index: int) -> Engine:
        engine = self._engines[index]
        if engine is None:
            with self._open_lock:
                engine = self._engines[index]
                if engine is None:
                    engine = self._openers[index]()
                    self._engines[index] = engine
        return engine

    def run(self, batch: np.ndarray) -> np.ndarray:
        key = bucket(len(batch))
        with self._lock:
            race = self._races.setdefault(key, Race(len(self._openers)))
            index = race.pick()
        engine = self._engine(index)
        started = time.perf_counter()
        out = engine.run(batch)
        seconds = time.perf_counter() - started
        with self._lock:
            race.record(index, seconds, max(1, len(batch)))
        return out

    def engine_for(self, batch_size: int) -> Engine | None:
        """The engine currently winning batches of ``batch_size`` (None before any run)."""
        with self._lock:
            race = self._races.get(bucket(batch_size))
            return None if race is None else self._engine(race.best())

    @property
    def provider(self) -> str:
        with self._lock:
            if not self._races:
                return "auto: racing " + " | ".join(self.labels)
            cells = []
            for key in sorted(self._races):
                race = self._races[key]
                state = "" if race.decided() else " (racing)"
                cells.append(f"{self.labels[race.best()]} [{bucket_label(key)}]{state}")
            return " / ".join(cells)

    def describe(self) -> str:
        with self._lock:
            lines = [f"auto: the fastest of {', '.join(self.labels)} per batch size, measured"]
            for key in sorted(self._races):
                race = self._races[key]
                times = ", ".join(
                    f"{self.labels[i]} {statistics.fmean(t) * 1e3:.3g} ms/image"
                    for i, t in enumerate(race.times)
                    if t
                )
                lines.append(f"{bucket_label(key)}: {self.labels[race.best()]} ({times})")
            return "; ".join(lines)

    def close(self) -> None:
        for engine in self._engines:
            if engine is not None:
                engine.close()
