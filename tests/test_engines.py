"""The engine layer: every installed engine runs the bundled model and agrees with onnxruntime;
``auto`` chooses as documented; engines that cannot run are reported, not crashed on."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn import Classifier
from edgecnn.errors import ProviderError
from edgecnn.runtime.classifier import default_model_path
from edgecnn.runtime.engines.base import ENGINES, EngineOptions
from edgecnn.runtime.engines.registry import (
    SMALL_MODEL_BYTES,
    SPLIT_BATCH,
    choose,
    engine_statuses,
    open_engine,
)
from edgecnn.runtime.providers import NO_GPU

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
    assert [(r.engine, r.options.mode, r.min_batch) for r in small.routes] == [
        ("cpu", "latency", 1),
        ("openvino", "throughput", SPLIT_BATCH),
    ]
    assert small.note is None and "OpenVINO THROUGHPUT" in small.reason
    large = choose("auto", EngineOptions(), model_bytes=SMALL_MODEL_BYTES + 1, **FACTS)
    assert [(r.engine, r.options.mode) for r in large.routes] == [
        ("openvino", "latency"),
        ("openvino", "throughput"),
    ]


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


def test_auto_routes_by_batch_size_and_says_what_runs(batch):
    engine, choice = open_engine(default_model_path("cpu"), "auto")
    first = choice.routes[0].engine
    assert engine.provider.split(" [")[0] == Classifier.load(provider=first).provider
    out_one = engine.run(batch[:1])
    out_many = engine.run(batch[:SPLIT_BATCH])
    np.testing.assert_array_equal(out_one.argmax(1), out_many[:1].argmax(1))
    if len(choice.routes) > 1:
        assert engine.engine_for(1).name == first
        assert engine.engine_for(SPLIT_BATCH).name == choice.routes[-1].engine
        assert "not open" not in engine.describe()
