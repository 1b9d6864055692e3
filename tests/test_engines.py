"""The engine layer: every installed engine runs the bundled model and agrees with onnxruntime;
``auto`` chooses as documented; engines that cannot run are reported, not crashed on."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from edgecnn import Classifier
from edgecnn.errors import ProviderError
from edgecnn.runtime.classifier import default_model_path
from edgecnn.runtime.engines.base import ENGINES, EngineOptions, TensorInfo, warm_up
from edgecnn.runtime.engines.racing import (
    SAMPLES,
    SETTLE_SECONDS,
    WARMUP_RUNS,
    Race,
)
from edgecnn.runtime.engines.registry import (
    SMALL_MODEL_BYTES,
    choose,
    engine_statuses,
    open_engine,
)
from edgecnn.runtime.providers import NO_GPU
from tests.conftest import write_color_image
from tests.counting_engine import CountingEngine

STATUS = {s.engine: s for s in engine_statuses()}
LOADS = [name for name in ENGINES if STATUS[name].loads]


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    """Real pictures: the sample images, prepared as the bundled model expects."""
    from pathlib import Path

    clf = Classifier.load(default_model_path("cpu"), provider="cpu")
    paths = sorted(Path("samples/images").glob("*.jpg"))
    return np.stack([clf.prepare(p) for p in paths] * 2)


@pytest.mark.parametrize("precision", ["int8", "fp32"])
@pytest.mark.parametrize("engine", LOADS)
def test_each_engine_that_loads_agrees_with_onnxruntime(engine, precision, batch):
    path = default_model_path("cpu").with_name(f"shapes-{precision}.onnx")
    reference = Classifier.load(path, provider="cpu").run(batch)
    for mode in ("latency", "throughput"):
        clf = Classifier.load(path, provider=engine, options=EngineOptions(mode=mode))
        assert clf.engine.name == engine
        got = clf.run(batch)
        assert got.shape == reference.shape and got.dtype == np.float32
        np.testing.assert_array_equal(got.argmax(1), reference.argmax(1))
        assert np.abs(got - reference).max() < 0.02
        single = clf.run(batch[:1])  # one frame through the same engine
        np.testing.assert_allclose(single, got[:1], atol=1e-4)


@pytest.mark.parametrize("engine", [n for n in ENGINES if not STATUS[n].loads])
def test_an_engine_that_cannot_run_fails_with_the_reason(engine):
    with pytest.raises(ProviderError, match=rf"^{engine}: ") as info:
        Classifier.load(provider=engine)
    assert len(str(info.value).splitlines()) == 1
    assert STATUS[engine].reason  # doctor says why too


def test_statuses_cover_every_engine_and_cpu_always_loads():
    assert list(STATUS) == list(ENGINES)
    assert STATUS["cpu"].loads and STATUS["cpu"].devices == ("CPU",)
    for status in STATUS.values():
        assert status.loads <= status.installed
        if not status.loads:
            assert status.reason


FACTS = {"cuda_loads": False, "cuda_reason": NO_GPU, "openvino": True}


def test_auto_rules_on_a_cpu_with_openvino():
    small = choose("auto", EngineOptions(), model_bytes=200_000, **FACTS)
    assert [r.label for r in small.routes] == [
        "CPUExecutionProvider",
        "OpenVINO:CPU THROUGHPUT",
        "OpenVINO:CPU LATENCY",
    ]
    assert small.note is None and "fastest of" in small.reason
    large = choose("auto", EngineOptions(), model_bytes=SMALL_MODEL_BYTES + 1, **FACTS)
    assert [r.label for r in large.routes] == ["OpenVINO:CPU THROUGHPUT", "OpenVINO:CPU LATENCY"]


def test_auto_rules_gpu_and_missing_openvino():
    gpu = choose("auto", EngineOptions(), model_bytes=1, **{**FACTS, "cuda_loads": True})
    assert [r.engine for r in gpu.routes] == ["cuda"] and "NVIDIA" in gpu.reason
    broken = {**FACTS, "cuda_reason": "libcublasLt.so.13 not found", "openvino": False}
    plain = choose("auto", EngineOptions(), model_bytes=1, **broken)
    assert [r.engine for r in plain.routes] == ["cpu"]
    assert "edgecnn[openvino]" in plain.reason  # says what it would take
    assert "libcublasLt" in plain.note  # a GPU that is there but unusable is worth a note
    asked = choose("openvino", EngineOptions(), model_bytes=1, **FACTS)
    assert [r.engine for r in asked.routes] == ["openvino"]
    with pytest.raises(ProviderError, match="not one of"):
        choose("gpu", EngineOptions(), model_bytes=1, **FACTS)


def test_warm_up_runs_each_batch_size_of_the_profile_once_and_a_fixed_batch_alone():
    """The one warm-up: the GPU engines' (batch 1 and the profile's opt size, once each, so
    TensorRT builds at load), the CPU engines' (batch 1 twice); a fixed batch is the model's."""
    from edgecnn.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine

    inner = OnnxRuntimeEngine(default_model_path("cpu"), "cpu")
    gpu_like = CountingEngine(inner)
    warm_up(gpu_like, (1, 16), runs=1, strict=True)
    assert gpu_like.sizes == [1, 16]
    cpu_like = CountingEngine(inner)
    warm_up(cpu_like)
    assert cpu_like.sizes == [1, 1]
    image = inner.inputs[0]
    fixed = CountingEngine(inner, [TensorInfo(image.name, [4, *image.shape[1:]], image.type)])
    warm_up(fixed, (1, 16), runs=1)
    assert fixed.sizes == [4]
    symbolic = CountingEngine(inner, [TensorInfo(image.name, ["N", "H", 96, 3], image.type)])
    warm_up(symbolic)
    assert symbolic.sizes == []  # no fixed image size: nothing to warm up with


def test_warm_up_reports_a_failing_model_only_when_strict():
    from edgecnn.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine

    inner = OnnxRuntimeEngine(default_model_path("cpu"), "cpu")
    image = inner.inputs[0]
    wrong = [TensorInfo(image.name, ["N", 7, 7, 3], image.type)]  # the model refuses 7x7
    warm_up(CountingEngine(inner, wrong))  # the first real batch reports it, with the image
    with pytest.raises(Exception, match=r"(?i)dimension|shape"):
        warm_up(CountingEngine(inner, wrong), strict=True)


@pytest.mark.parametrize("engine", ["cpu", "cuda", "tensorrt"])
def test_an_engine_refuses_a_precision_it_cannot_run_with_the_reason(engine):
    for precision in ("bf16", "f16") if engine != "tensorrt" else ("bf16",):
        with pytest.raises(ProviderError, match=rf"^{engine}: runs f32") as info:
            choose(engine, EngineOptions(precision=precision), model_bytes=1, **FACTS)
        assert len(str(info.value).splitlines()) == 1
        assert f"{precision} runs on `provider`" in str(info.value)
        assert "openvino" in str(info.value)
    fp16 = choose("tensorrt", EngineOptions(precision="f16"), model_bytes=1, **FACTS)
    assert [(r.engine, r.options.precision) for r in fp16.routes] == [("tensorrt", "f16")]
    plain = choose(engine, EngineOptions(), model_bytes=1, **FACTS)
    assert [r.engine for r in plain.routes] == [engine]


@pytest.mark.parametrize("precision", ["bf16", "f16"])
def test_auto_runs_a_reduced_precision_on_openvino_alone_even_with_a_gpu(precision):
    asked = EngineOptions(precision=precision)
    for facts in (FACTS, {**FACTS, "cuda_loads": True}):
        choice = choose("auto", asked, model_bytes=1, **facts)
        assert [(r.engine, r.options.precision) for r in choice.routes] == [
            ("openvino", precision)
        ]  # no race against engines running f32
        assert f"{precision} was asked for: OpenVINO" in choice.reason
    with pytest.raises(ProviderError, match=r"edgecnn\[openvino\]"):
        choose("auto", asked, model_bytes=1, **{**FACTS, "openvino": False})
    exact = choose("auto", EngineOptions(), model_bytes=1, **FACTS)
    assert len(exact.routes) == 3  # f32: the race, as before


def test_classifier_load_never_runs_f32_when_bf16_is_asked():
    """The real engines: cpu + bf16 is refused at load; auto + bf16 opens OpenVINO at bf16
    (f32 only on a CPU without bf16, which OpenVINO then reports)."""
    fp32 = default_model_path("cpu").with_name("shapes-fp32.onnx")
    with pytest.raises(ProviderError, match=r"^cpu: runs f32, not `precision` bf16"):
        Classifier.load(fp32, provider="cpu", precision="bf16")
    if not STATUS["openvino"].loads:
        pytest.skip("OpenVINO does not load here")
    clf = Classifier.load(fp32, provider="auto", precision="bf16")
    assert clf.engine.name == "openvino" and clf.provider == "OpenVINO:CPU"
    assert clf.engine.options.precision == "bf16" and clf.engine.precision in ("bf16", "f32")
    assert "bf16 was asked for" in clf.choice_reason


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drive(race: Race, clock: Clock, cost, batches: int) -> list[int]:
    """Run ``batches`` batches through ``race`` on a fake clock; ``cost(index, since_switch)``
    is a run's seconds. The candidates picked, in order."""
    picks: list[int] = []
    switched = 0.0
    for _ in range(batches):
        index = race.pick()
        if not picks or picks[-1] != index:
            switched = clock.now
        seconds = cost(index, clock.now - switched)
        clock.now += seconds
        race.record(index, seconds)
        picks.append(index)
    return picks


def until_retimed(race: Race, clock: Clock, cost) -> list[int]:
    """Drive batches until a re-timing starts (after EXPLORE_SECONDS of running); the picks."""
    picks: list[int] = []
    while race.challenger is None:
        picks += drive(race, clock, cost, 1)
    return picks


def visits(picks: list[int]) -> list[int]:
    """Consecutive runs of one candidate collapsed: [0, 0, 1, 1, 0] -> [0, 1, 0]."""
    return [p for i, p in enumerate(picks) if i == 0 or picks[i - 1] != p]


def test_race_interleaves_settled_warm_samples_then_keeps_the_fastest_and_retimes_the_others():
    clock = Clock()
    race = Race(2, clock=clock)
    speed = {0: 0.003, 1: 0.001}  # candidate 1 is three times faster

    def cost(index: int, since_switch: float) -> float:
        if race.runs[index] < WARMUP_RUNS:
            return 0.5  # first runs: allocations
        # right after a switch the other engine's spinning threads still hold a core
        return speed[index] * (4 if since_switch < SETTLE_SECONDS else 1)

    picks = drive(race, clock, cost, 2000)
    assert visits(picks)[: 2 * SAMPLES] == [0, 1] * SAMPLES  # interleaved, not 0 0 0 1 1 1
    assert race.decided() and race.best() == 1  # the slow first and unsettled runs not counted
    assert statistics.median(race.times[1]) == pytest.approx(speed[1])
    picks = drive(race, clock, cost, 100_000)  # 100 s of batches
    # re-timed every EXPLORE_SECONDS of running, after a first few at 1, 2, 4, 8 s; not more
    assert 9 <= visits(picks).count(0) <= 14
    assert picks.count(1) > 0.9 * len(picks)
    speed[0] = 0.0003  # the load changed: candidate 0 is now the fastest
    drive(race, clock, cost, 100_000)
    assert race.best() == 0


def test_race_corrects_a_wrong_first_choice_within_seconds_of_running():
    """The first race is 3 samples of 20 ms each: a burst can fool it. The first re-timings
    come after 1, 2, 4, 8 s of running, so the faster engine takes over within ~2 s."""
    clock = Clock()
    race = Race(2, clock=clock)
    speed = {0: 0.001, 1: 0.0015}

    def cost(index: int, _since: float) -> float:  # candidate 0 hit by bursts while racing
        return speed[index] * (3 if index == 0 and not race.decided() else 1)

    while not race.decided():
        drive(race, clock, cost, 1)
    assert race.best() == 1  # fooled
    start = clock.now
    while race.best() != 0:
        drive(race, clock, cost, 1)
    assert clock.now - start < 2.0


def test_race_tells_candidates_5_percent_apart_through_host_phases():
    """The host runs a core at half speed in phases of 0.1 s (seeded patterns): a first race
    of 3 medians picked the 5% faster candidate in ~75% of them; close candidates racing on
    and compared in pairs pick it in nearly all."""
    import random

    right = 0
    for seed in range(100):
        rng = random.Random(seed)
        phases = [rng.choice((1.0, 2.0)) for _ in range(1000)]
        clock = Clock()
        race = Race(2, clock=clock)
        speed = {0: 0.00105, 1: 0.00100}
        while not race.decided():
            index = race.pick()
            seconds = speed[index] * phases[int(clock.now / 0.1)] * rng.uniform(0.9, 1.1)
            clock.now += seconds
            race.record(index, seconds)
        right += race.best() == 1
    assert right >= 95


def test_race_takes_back_a_takeover_that_steady_running_does_not_confirm():
    """Candidate 1 runs 30% slower than 0 once running steadily, but 40% faster for 0.15 s
    after a switch from 0 (onnxruntime's spinning kept the vCPU awake): every visit of it
    looks faster and it wins duels. Its steady samples after a takeover give the batches
    back at once, and such a challenger is not re-timed soon again."""
    clock = Clock()
    race = Race(2, clock=clock)

    def cost(index: int, since_switch: float) -> float:
        if index == 0:
            return 0.001
        return 0.0006 if since_switch < 0.15 else 0.0013

    drive(race, clock, lambda i, _: 0.001 if i == 0 else 0.0013, 3000)  # a clean first race
    assert race.best() == 0
    picks = drive(race, clock, cost, 100_000)  # ~100 s of batches: takeovers every ~20 s
    assert picks.count(1) < 0.05 * len(picks)  # each given back within ~0.3 s of running
    while race.probation is not None:
        picks += drive(race, clock, cost, 1)
    assert race.best() == 0


def test_race_keeps_its_winner_against_a_candidate_within_the_margin():
    """A challenger 1% faster than the winner is noise on a shared machine, not a reason to
    switch (MARGIN 3%); and a preempted sample in the winner's window when a challenger is
    re-timed starts no duel (the median of the window decides, not its mean)."""
    clock = Clock()
    race = Race(2, clock=clock)
    speed = {0: 0.00105, 1: 0.00100}  # candidate 1 is the faster one while they race
    drive(race, clock, lambda i, _: speed[i], 3000)
    assert race.decided() and race.best() == 1
    speed[0] = 0.00099  # now candidate 0 is 1% faster
    picks = until_retimed(race, clock, lambda i, _: speed[i])
    race.times[1].append(1.0)  # the winner's latest sample was hit by a 1 s preemption
    duels = 0
    for _ in range(200_000):  # ~200 s of batches: ~20 re-timings of candidate 0
        picks += drive(race, clock, lambda i, _: speed[i], 1)
        duels += bool(race.duel)
    assert duels == 0
    assert race.best() == 1
    assert picks.count(1) > 0.95 * len(picks)


def test_race_switches_only_on_fresh_numbers_of_both_sides():
    """A slowdown of the winner while it runs alone, or of the winner just before a re-timing,
    hands nothing over: the winner is re-timed right after the challenger before a switch."""
    clock = Clock()
    race = Race(2, clock=clock)
    speed = {0: 0.001, 1: 0.0012}
    drive(race, clock, lambda i, _: speed[i], 2000)
    assert race.best() == 0
    slow_until = clock.now + 0.5  # the winner is 3x slower for half a second (another process)

    def cost(index: int, _since: float) -> float:
        return speed[index] * (3 if index == 0 and clock.now < slow_until else 1)

    picks = drive(race, clock, cost, 50_000)  # ~50 s: several re-timings of candidate 1
    assert race.best() == 0
    assert picks.count(0) > 0.95 * len(picks)
    # the winner's last samples before a re-timing are slow ...
    until_retimed(race, clock, lambda i, _: speed[i] * (3 if i == 0 else 1))
    assert race.times[0][-1] == pytest.approx(3 * speed[0])
    # ... so re-timed candidate 1 looks faster; the winner, re-timed, is not
    picks = drive(race, clock, lambda i, _: speed[i], 1000)
    assert visits(picks) == [1, 0, 1, 0, 1, 0]  # the first look, then a duel: W C W C W
    assert race.best() == 0


def test_race_duel_survives_a_burst_that_hits_one_visit_of_the_winner():
    """The winner's latest samples are slow, so the re-timed challenger passes the first look;
    in the duel a burst of another process makes the winner's first visit 5x slower: one
    interleaved visit of three, so the batches stay with the winner."""
    clock = Clock()
    race = Race(2, clock=clock)
    speed = {0: 0.001, 1: 0.0012}
    drive(race, clock, lambda i, _: speed[i], 2000)
    assert race.best() == 0
    until_retimed(race, clock, lambda i, _: speed[i] * (3 if i == 0 else 1))  # slow latest

    slow: list[float] = []

    def cost(index: int, _since: float) -> float:
        if index == 0 and race.visit == 0 and len(race.duel) == 4:  # its first duel visit
            slow.append(clock.now)
            return speed[0] * 5
        return speed[index]

    picks = drive(race, clock, cost, 1000)
    assert visits(picks) == [1, 0, 1, 0, 1, 0]
    assert slow[-1] - slow[0] > SETTLE_SECONDS  # the burst lasted the whole visit ...
    assert race.best() == 0  # ... and was outvoted


def test_race_a_faster_challenger_takes_over_and_the_old_winner_is_re_timed_next():
    clock = Clock()
    race = Race(3, clock=clock)
    speed = {0: 0.001, 1: 0.002, 2: 0.004}
    drive(race, clock, lambda i, _: speed[i], 3000)
    assert race.best() == 0
    speed[1] = 0.0005  # the load changed: candidate 1 is now 2x faster
    for _ in range(100):  # re-timings alternate between 1 and 2: within ~20 s
        drive(race, clock, lambda i, _: speed[i], 1000)
        if race.best() == 1:
            break
    assert race.best() == 1
    speed[1] = 0.002  # and back
    drive(race, clock, lambda i, _: speed[i], 100)  # the winner's latest samples say so
    race.rotation = 0  # the rotation alone would re-time candidate 2 next
    until_retimed(race, clock, lambda i, _: speed[i])
    assert race.challenger == 0  # the old winner, re-timed first ...
    drive(race, clock, lambda i, _: speed[i], 1000)
    assert race.best() == 0  # ... wins back at once


def test_auto_races_real_engines_and_says_what_runs(batch):
    engine, choice = open_engine(default_model_path("cpu"), "auto")
    if len(choice.routes) == 1:
        pytest.skip("OpenVINO is not installed: auto has one candidate")
    assert engine.provider.startswith("auto: racing")
    reference = Classifier.load(provider="cpu").run(batch[:1])
    for _ in range(20_000):  # until decided: every candidate has SAMPLES samples (~0.3 s)
        np.testing.assert_array_equal(engine.run(batch[:1]).argmax(1), reference.argmax(1))
        if "(racing)" not in engine.provider:
            break
    assert engine.provider.endswith("[batch 1]")
    assert engine.engine_for(1) is not None
    assert all(r.label in engine.describe() for r in choice.routes)  # each one's ms/image


class ThreeTimes(CountingEngine):
    """A real engine made three times slower: each batch runs three times."""

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.inner.run(batch)
        self.inner.run(batch)
        return super().run(batch)


def test_decided_race_sends_batches_straight_to_the_winner_and_counts_every_one(batch):
    """After the race, most batches skip the bookkeeping (COAST) yet every batch is counted
    for the engine that ran it (the re-timing schedule runs on these counts and times)."""
    from edgecnn.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine
    from edgecnn.runtime.engines.racing import COAST, RacingEngine

    model = default_model_path("cpu")
    fast, slow = CountingEngine(OnnxRuntimeEngine(model)), ThreeTimes(OnnxRuntimeEngine(model))
    race_engine = RacingEngine([lambda: slow, lambda: fast], ["slow", "fast"])
    while "(racing)" in race_engine.provider or not race_engine.provider.startswith("fast"):
        race_engine.run(batch[:1])
    race = race_engine._races[0]
    decided_at = list(race.runs)
    for _ in range(4 * (COAST + 1)):
        race_engine.run(batch[:1])
    assert race.coast + race.coasted == COAST  # batches since the last timed one, or to come
    for _ in range(3000):
        race_engine.run(batch[:1])
    counted = [race.runs[i] + (race.coasted if i == race.winner else 0) for i in range(2)]
    assert counted == [len(slow.sizes), len(fast.sizes)]
    assert counted[1] - decided_at[1] > 0.9 * (sum(counted) - sum(decided_at))


def test_doctor_lists_every_engine_and_a_machine_without_nvidia_driver_gets_no_cuda_note(
    color_model_path, tmp_path
):
    from click.testing import CliRunner

    from edgecnn.cli import cli
    from edgecnn.runtime.providers import nvidia_driver

    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output
    for name in ENGINES:
        assert f"  {name} " in result.output
    image = tmp_path / "red.png"
    write_color_image(image, "red")
    classified = CliRunner().invoke(cli, ["classify", str(image), "-m", str(color_model_path)])
    assert classified.exit_code == 0, classified.output
    if not nvidia_driver():
        assert "CUDA: no (no NVIDIA GPU)" in result.output
        assert "note:" not in classified.stderr  # no CUDA library note on every command


def test_int8_defaults_to_portable_and_a_vnni_model_warns_on_a_cpu_without_vnni():
    from edgecnn.export.quantize import QuantSettings
    from edgecnn.tools.machine import int8_target_problem

    default = QuantSettings().resolved()
    assert default.reduce_range is True and default.target == "portable"
    vnni = QuantSettings(target="vnni").resolved()
    assert vnni.reduce_range is False and vnni.to_dict()["target"] == "vnni"
    avx2_box = {"vnni": False, "avx2": True, "avx512": False}
    assert int8_target_problem(default.to_dict(), avx2_box) is None
    problem = int8_target_problem(vnni.to_dict(), avx2_box)
    assert "vnni" in problem and "--int8-target portable" in problem
    assert int8_target_problem(vnni.to_dict(), {**avx2_box, "vnni": True}) is None
    arm = {"vnni": False, "avx2": False, "avx512": False}
    assert int8_target_problem(vnni.to_dict(), arm) is None
    assert int8_target_problem({"reduce_range": False, "weights": "int8"}, avx2_box)  # older


def test_bench_measures_engines_side_by_side_with_ratio_and_agreement(color_model_path):
    from edgecnn.tools.bench_settings import BenchError, Settings, parse_providers
    from edgecnn.tools.model_bench import Benchmark

    assert parse_providers("all")[:2] == ("auto", "cpu")
    assert set(parse_providers("all")) == {"auto", *LOADS}  # what cannot load is left out
    with pytest.raises(BenchError, match="comma-separated"):
        Settings(provider="cpu,tpu")
    engines = ",".join(LOADS)
    settings = Settings(batch_sizes=(2,), threads=(None,), warmup=1, iterations=3, provider=engines)
    report = Benchmark([str(color_model_path)], settings).run()
    rows = report["model_only"]
    assert [r["model"] for r in rows] == [f"color.onnx [{name}]" for name in LOADS]
    assert max(r["ratio_to_fastest"] for r in rows) == 1.0
    assert all(r["top1_agreement"] == 1.0 for r in rows)  # vs onnxruntime CPU, same inputs
    assert [w["model"] for w in report["warmup"]] == [r["model"] for r in rows]  # load/build s


@pytest.mark.parametrize("engine", LOADS)
def test_each_engine_runs_a_model_without_metadata(engine, tmp_path):
    """A model from elsewhere (no edgecnn metadata) runs on every engine, as on onnxruntime."""
    from edgecnn import Foreign
    from tests.models import color_model, save

    path = save(color_model(metadata=False), tmp_path / "foreign.onnx")
    foreign = Foreign(labels=("r", "g", "b"), input_size=(16, 16))
    images = np.zeros((4, 16, 16, 3), np.uint8)
    for i in range(3):
        images[i, :, :, i] = 255  # pure red, green, blue
    reference = Classifier.load(path, provider="cpu", foreign=foreign).run(images)
    got = Classifier.load(path, provider=engine, foreign=foreign).run(images)
    np.testing.assert_array_equal(got.argmax(1), reference.argmax(1))
    np.testing.assert_allclose(got, reference, atol=1e-4)


def test_onnxruntime_engine_runs_the_binding_as_public_run_does_and_close_lets_it_go():
    """The engine calls the session's binding directly (public run()'s Python checks cost ~1% of
    a batch-1 run): same numbers as run(), and close() must still free the session."""
    import gc
    import weakref

    from edgecnn.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine

    engine = OnnxRuntimeEngine(str(default_model_path("cpu")))
    batch = np.random.default_rng(3).integers(0, 256, (5, 96, 96, 3), dtype=np.uint8)
    public = engine.session.run(None, {engine.inputs[0].name: batch})[0]
    np.testing.assert_array_equal(engine.run(batch), public)
    binding = weakref.ref(engine.session._sess)
    engine.close()
    gc.collect()
    assert binding() is None
