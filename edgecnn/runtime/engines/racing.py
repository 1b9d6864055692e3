"""``auto`` on a CPU: several engines race on the real batches, the fastest one runs them.

Which engine is fastest depends on the batch size, the model and on what else the machine is
doing: measured on this project's 2-core box, onnxruntime with spinning threads is the fastest
on the small bundled fp32 model when the machine is quiet and 3x slower than OpenVINO when
other processes share the cores; OpenVINO wins the large models. So instead of a fixed rule,
:class:`RacingEngine` opens the candidates ``auto`` picked (at load, with a warm-up run each)
and, per batch-size class (1, 2-3, 4-7, 8-15, ...), visits them in turn on the first batches
(3 samples each; candidates within 2x of the best race on to 9 and are compared in pairs of
neighbouring visits), then sends every batch to the fastest, and re-times another
candidate after 1, 2, 4, 8 and then every :data:`EXPLORE_SECONDS` seconds of its own running,
so a wrong first choice is corrected soon and a change of load is followed.

How a fair measurement is taken on a small, shared machine (each rule fixed a wrong choice
measured on the 2-core box): a candidate is timed only after it has run for
:data:`SETTLE_SECONDS` since the switch to it (onnxruntime's spinning threads hold a core
~40 ms after its last run and slowed whichever engine ran next); visits are interleaved
(A B C A B C ...) so a change of load hits every candidate alike; the median of samples, not
the mean, decides (one 10 ms preemption by another process must not flip the choice); and the
winner changes only when another candidate is :data:`MARGIN` faster. A re-timing is one
sample of the challenger; only one that beats the winner's latest samples goes on to a duel,
winner and challenger taking turns (W C W C W), decided on their medians; a challenger that
took over is on probation until it has run steadily (its first samples after 0.25 s must not
be slower than the old winner's in the duel: visits right after onnxruntime ran flatter the
visited engine), and is then followed by a re-timing of the old winner. (Measured before
duels: the winner re-timed in one 110 ms stretch, right after the challenger, was hit whole
by another process's burst; auto then ran OpenVINO, 2.5x slower on the bundled fp32 model at
batch 1, for 11k of its 21k runs, 0.61x of onnxruntime's speed.)
The choice is visible at all times: :attr:`RacingEngine.provider` and
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

#: Timed samples per candidate (one per visit, visits interleaved) before a class is decided.
SAMPLES = 3
#: Untimed first runs of each candidate in each batch-size class (allocations for the shape,
#: request creation, thread pools waking up: measured up to 100x a steady run).
WARMUP_RUNS = 2
#: After a switch, a candidate's runs are timed only once it has run this long.
SETTLE_SECONDS = 0.05
#: One timed sample spans consecutive runs of at least this long: a single 0.2 ms run of a
#: small model is mostly timer and scheduler noise.
SAMPLE_SECONDS = 0.02
#: A duel's length: the winner's and the challenger's samples taken in turns (W C W C W).
WINDOW = 3
#: Candidates whose medians are within this factor of the best one after the first
#: :data:`SAMPLES` (1.0: up to twice as slow) race on, alone, to :data:`CLOSE_SAMPLES`
#: samples each, and their interleaved visits are compared in pairs, newest with newest (a
#: phase of the host slows both sides of a pair alike). Why so wide: this VM's phases (a core
#: at half speed for 0.05-1 s) make medians of 3 samples differ by up to 2x on their own, and
#: 3 samples chose the slower of OpenVINO's two modes on the bundled int8 model at batch 16
#: (5-8% apart) in 1 of 8 processes. Simulated with 2x phases of 0.1 s, a candidate 5% faster
#: won 75% of races of 3 samples, 99.7% of these (races last ~1.2 s instead of ~0.4 s).
CLOSE = 1.0
CLOSE_SAMPLES = 9
#: After the race, another candidate is re-timed (one visit, one sample) when both this many
#: batches and this many seconds of running (the race's own run time, not the wall clock) have
#: passed since the last re-timing. A visit costs ~70 ms at the other engine's speed (a duel
#: three of them): every 10 s of running keeps that under 1-2%. (Wall-clock seconds charged a
#: model that runs a quarter of the time 4x that share: measured in the engines benchmark, a
#: duel inside one 0.6 s slice left auto at 0.81x of onnxruntime in that round.)
EXPLORE_EVERY = 16
EXPLORE_SECONDS = 10.0
#: The first re-timings come sooner, after 1, 2, 4, 8 s of running (and again after a change of
#: winner): the race's 3 samples of 20 ms are few, and a wrong first choice was measured to hold
#: for the whole engines benchmark (OpenVINO LATENCY over onnxruntime on the bundled fp32 model
#: at batch 16, 0.75x of onnxruntime's speed).
EXPLORE_FIRST = 1.0
#: The winner changes only when another candidate's median is this much lower.
MARGIN = 0.03
#: Once decided, after each timed run of the winner this many batches go straight to it with no
#: bookkeeping (no lock, no clock): 0.32 instead of 1.47 us a run over a 20 us engine (measured;
#: at 0.2 ms a run of the bundled model the gain is below what the engines benchmark resolves).
#: The skipped batches count as long as the timed run before them.
COAST = 7


#: A new winner's samples count for its probation only after this much running since the
#: takeover: the after-effect of onnxruntime's spinning on the next engine lasted 100-150 ms
#: (20 ms windows after 100 ms of onnxruntime, OpenVINO LATENCY on the bundled int8 model:
#: 3660, 4241, 3497, 3342, 3300 images/s vs 3134-3335 running steadily).
PROBATION_SETTLE = 0.25


def bucket(batch_size: int) -> int:
    """Batch-size class: 1, 2-3, 4-7, 8-15, ... (numbered 0, 1, 2, 3, ...)."""
    return max(1, batch_size).bit_length() - 1


def bucket_label(index: int) -> str:
    """``batch 1``, ``batch 2-3``, ``batch 4-7``, ..."""
    low, high = 1 << index, (2 << index) - 1
    return f"batch {low}" if low == high else f"batch {low}-{high}"


@dataclass
class Race:
    """The race of one batch-size class: who runs the next batch, and what the runs measured.

    A *visit* keeps one candidate running until it has one timed sample. Outside visits the
    winner runs (its samples keep its window fresh). The winner changes only at the end of a
    duel: a re-timed challenger whose sample beats the winner's latest ones then takes turns
    with the winner (W C W C W), and the medians of those fresh, interleaved samples decide
    (a burst of another process that hits one visit cannot hand the batches over).
    """

    candidates: int
    clock: Callable[[], float] = time.monotonic
    times: list[deque[float]] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)
    winner: int | None = None
    current: int | None = None
    switched_at: float = 0.0
    visit: int | None = None
    challenger: int | None = None
    duel: list[int] = field(default_factory=list)  # the duel's visits still to come
    dueling: bool = False
    next_challenger: int | None = None
    since_explore: int = 0
    busy: float = 0.0  # seconds of runs, all candidates
    explored_at: float = 0.0  # ``busy`` at the last re-timing
    explore_gap: float = EXPLORE_FIRST  # running seconds from one re-timing to the next
    rotation: int = 0
    stretch: list[float] = field(default_factory=lambda: [0.0, 0.0])  # seconds, images
    pool: list[int] | None = None  # the close candidates racing on (None: all of them)
    probation: tuple[int, float, float] | None = None  # old winner, its median, busy then
    coast: int = 0  # batches the winner runs next without bookkeeping (read without the lock)
    coasted: int = 0  # batches it ran so since the last recorded one

    def __post_init__(self) -> None:
        self.times = [deque(maxlen=CLOSE_SAMPLES) for _ in range(self.candidates)]
        self.runs = [0] * self.candidates

    def pick(self) -> int:
        """The candidate for the next batch."""
        if self.visit is not None:
            return self.visit
        if self.winner is None:  # racing: visit the next candidate with the fewest samples
            start = 0 if self.current is None else self.current + 1
            order = [(start + k) % self.candidates for k in range(self.candidates)]
            if self.pool is not None:
                order = [i for i in order if i in self.pool]
            fewest = min(len(self.times[i]) for i in order)
            return self._visit(next(i for i in order if len(self.times[i]) == fewest))
        if self.duel:
            return self._visit(self.duel.pop(0))
        self.since_explore += 1
        due = self.since_explore >= EXPLORE_EVERY and (
            self.busy - self.explored_at >= self.explore_gap
        )
        if self.candidates > 1 and due:
            self.since_explore, self.explored_at = 0, self.busy
            self.explore_gap = min(2 * self.explore_gap, EXPLORE_SECONDS)
            challenger, self.next_challenger = self.next_challenger, None
            if challenger is None:
                others = [i for i in range(self.candidates) if i != self.winner]
                self.rotation += 1
                challenger = others[self.rotation % len(others)]
            self.challenger = challenger
            self.times[challenger].clear()  # fresh numbers: the load may have changed since
            return self._visit(challenger)
        self.coast = COAST
        return self.winner

    def _visit(self, index: int) -> int:
        self.visit = index
        return index

    def record(self, index: int, seconds: float, images: int = 1) -> None:
        """One run's time (``seconds``, just ended). Runs count once the candidate is warm and
        has run :data:`SETTLE_SECONDS` since the switch to it; consecutive ones add up to a
        sample of at least :data:`SAMPLE_SECONDS`."""
        now = self.clock()
        if self.coasted:  # the winner's batches that skipped the bookkeeping
            coasted, self.coasted = self.coasted, 0
            self.runs[self.winner if self.winner is not None else index] += coasted
            self.busy += coasted * seconds
            self.since_explore += coasted
        self.runs[index] += 1
        self.busy += seconds
        if index != self.current:
            self.current, self.switched_at, self.stretch = index, now - seconds, [0.0, 0.0]
            return
        if self.runs[index] <= WARMUP_RUNS or now - seconds - self.switched_at < SETTLE_SECONDS:
            return
        self.stretch[0] += seconds
        self.stretch[1] += images
        if self.stretch[0] < SAMPLE_SECONDS:
            return
        self.times[index].append(self.stretch[0] / self.stretch[1])
        self.stretch = [0.0, 0.0]
        if self.visit == index:
            self.visit = None
            self._visit_done(index)
        elif index == self.winner and self.probation is not None:
            self._probation(index)

    def _visit_done(self, index: int) -> None:
        if self.winner is None:  # racing: decided once every candidate has its samples
            self._decide()
            return
        challenger, winner = self.challenger, self.winner
        if challenger is None or self.duel:
            return
        if not self.dueling:  # the first look: one sample against the winner's latest ones
            if self.times[challenger][-1] < (1 - MARGIN) * self._median(winner):
                self.dueling = True
                self.times[winner].clear()
                self.duel = [winner, challenger] * (WINDOW - 1) + [winner]
                return
        elif self._median(challenger) < (1 - MARGIN) * self._median(winner):
            self.winner, self.next_challenger = challenger, winner
            self.explore_gap = EXPLORE_FIRST
            self.probation = (winner, self._median(winner), self.busy)
        self.challenger, self.dueling = None, False

    def _probation(self, index: int) -> None:
        """A new winner's first :data:`WINDOW` samples running steadily decide whether the
        takeover stands: slower than the old winner measured in the duel, and the old winner
        is back at once. Why: an engine visited right after onnxruntime ran measured 10-20%
        faster than it runs steadily (onnxruntime's spinning keeps the vCPU awake, so the
        other engine's thread wake-ups are cheap), and such duels handed the bundled fp32
        model at batch 16 to OpenVINO THROUGHPUT for stretches: 0.74x of onnxruntime."""
        old, old_median, since = self.probation  # type: ignore[misc]
        if self.busy - since < PROBATION_SETTLE:
            self.times[index].clear()  # still in the switch's after-effects
            return
        if len(self.times[index]) < WINDOW:
            return
        self.probation = None
        if self._median(index) > (1 + MARGIN) * old_median:  # the visits misled: not soon again
            self.winner, self.explore_gap = old, EXPLORE_SECONDS

    def _decide(self) -> None:
        """After :data:`SAMPLES` each: the fastest median wins, unless others are within
        :data:`CLOSE` of it; those race on to :data:`CLOSE_SAMPLES` and are compared pairwise
        with it, sample by sample (the k-th newest samples of each come from one round of
        interleaved visits, so a phase of the host slows both sides of a pair alike)."""
        pool, needed = self.pool, CLOSE_SAMPLES
        if pool is None:
            pool, needed = list(range(self.candidates)), SAMPLES
        if min(len(self.times[i]) for i in pool) < needed:
            return
        best = min(pool, key=self._median)
        if self.pool is not None:  # the close ones' samples are in: pairwise, not medians
            self.winner = min(self.pool, key=lambda i: self._paired(i, best))
        else:
            limit = (1 + CLOSE) * self._median(best)
            close = [i for i in pool if i != best and self._median(i) < limit]
            if close:
                self.pool = [best, *close]
                return
            self.winner = best
        self.pool, self.explored_at = None, self.busy

    def _paired(self, index: int, other: int) -> float:
        """The median of ``index``'s samples over ``other``'s, newest with newest."""
        if index == other:
            return 1.0
        pairs = zip(reversed(self.times[index]), reversed(self.times[other]), strict=False)
        return statistics.median(a / b for a, b in pairs)

    def _median(self, index: int) -> float:
        times = self.times[index]
        return statistics.median(times) if times else float("inf")

    def best(self) -> int:
        """The winner; while racing, the candidate with the lowest median so far."""
        if self.winner is not None:
            return self.winner
        return min(range(self.candidates), key=self._median)

    def decided(self) -> bool:
        """True once every candidate has had its timed visits."""
        return self.winner is not None


class RacingEngine(Engine):
    """Candidates over one model; per batch-size class the fastest measured one runs.

    Every candidate is opened and warmed up here, at load (OpenVINO compiles, onnxruntime
    allocates): the first batches then measure inference, not set-up, and ``build_s`` says
    what loading cost.
    """

    name = "auto"

    def __init__(self, openers: Sequence[Callable[[], Engine]], labels: Sequence[str]) -> None:
        if not openers:
            raise ValueError("a race needs at least one candidate")
        self.labels = list(labels)
        started = time.perf_counter()
        self._engines: list[Engine] = []
        try:
            for opener in openers:  # each engine warms itself up when it opens
                self._engines.append(opener())
        except BaseException:
            self.close()
            raise
        self.build_s = time.perf_counter() - started
        first = self._engines[0]
        self.inputs, self.outputs, self.metadata = first.inputs, first.outputs, first.metadata
        self._races: dict[int, Race] = {}
        self._lock = threading.Lock()

    def run(self, batch: np.ndarray) -> np.ndarray:
        key = bucket(len(batch))
        race = self._races.get(key)
        if race is not None and race.coast > 0:  # the decided winner, no bookkeeping
            race.coast -= 1  # (a decrement lost between two threads costs one timed run)
            race.coasted += 1
            return self._engines[race.winner].run(batch)  # type: ignore[index]
        with self._lock:
            race = self._races.get(key)
            if race is None:
                race = self._races[key] = Race(len(self._engines))
            index = race.pick()
        started = time.perf_counter()
        out = self._engines[index].run(batch)
        seconds = time.perf_counter() - started
        with self._lock:
            race.record(index, seconds, max(1, len(batch)))
        return out

    def engine_for(self, batch_size: int) -> Engine | None:
        """The engine currently winning batches of ``batch_size`` (None before any run)."""
        with self._lock:
            race = self._races.get(bucket(batch_size))
            return None if race is None else self._engines[race.best()]

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
                    f"{self.labels[i]} {statistics.median(t) * 1e3:.3g} ms/image"
                    for i, t in enumerate(race.times)
                    if t
                )
                lines.append(f"{bucket_label(key)}: {self.labels[race.best()]} ({times})")
            return "; ".join(lines)

    def close(self) -> None:
        for engine in self._engines:
            engine.close()
