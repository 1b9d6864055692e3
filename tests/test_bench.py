"""edgecnn bench: statistics, report schema, provider reporting, each mode, bad input.

No test asserts a wall-clock limit and none compares speeds; configurations are tiny (a few
iterations on 16x16 models). One bound is relative to the time a run took: progress lines in a
timed loop are at most 2 + 5 per second of that run (the throttle), however slow the machine.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn import load_image
from edgecnn.cli import cli
from edgecnn.errors import EdgecnnError
from edgecnn.runtime.classifier import Classifier
from edgecnn.tools import bench_report
from edgecnn.tools.bench_settings import BenchError, Settings, parse_list
from edgecnn.tools.latency_stats import latency_stats
from edgecnn.tools.machine import OtherLoad, cpu_info, others_share
from edgecnn.tools.model_bench import Benchmark, model_names
from edgecnn.tools.pipeline_limit import machine_limit, verdict
from edgecnn.tools.report_files import write_json
from tests.models import color_model, save

FAST = {"iterations": 3, "warmup": 1}


def run_bench(*args: str) -> object:
    return CliRunner().invoke(cli, ["bench", *args])


# ----------------------------------------------------------------------------- statistics


def test_latency_stats_of_a_known_sample() -> None:
    stats = latency_stats(list(range(1, 101)))  # 1..100 ms
    assert stats["count"] == 100
    assert stats["min"] == 1 and stats["max"] == 100
    assert stats["mean"] == pytest.approx(50.5)
    assert stats["p50"] == pytest.approx(50.5)
    assert stats["p90"] == pytest.approx(90.1)
    assert stats["p95"] == pytest.approx(95.05)
    assert stats["p99"] == pytest.approx(99.01)


def test_model_only_rows_derive_throughput_from_samples(color_model_path: Path) -> None:
    run = Benchmark([str(color_model_path)], Settings(batch_sizes=(4,), threads=(1,), **FAST))
    run.records.append(
        {
            "model": "color.onnx",
            "threads": "1",
            "batch_size": 4,
            "input": "synthetic",
            "keras": False,
            "samples_ms": [10.0, 20.0, 30.0, 40.0],
        }
    )
    run.model_info.append({"name": "color.onnx", "provider": "CPUExecutionProvider"})
    (row,) = run.report()["model_only"]
    assert row["latency_ms"]["p50"] == pytest.approx(25.0)
    assert row["per_image_ms"] == pytest.approx(100.0 / 16)
    assert row["images_per_second"] == pytest.approx(16 / 0.1)
    assert row["speedup_vs_first"] == pytest.approx(1.0)


def test_machine_limit_formula() -> None:
    one_core = {
        "decode": {"count": 3, "mean": 30.0},
        "preprocess": {"count": 3, "mean": 10.0},
        "postprocess": {"count": 3, "mean": 0.0},
    }
    result = machine_limit(one_core, inference_ms=5.0, cores=2)
    # 1 / (40 ms / 2 cores + 5 ms) = 40 images/s
    assert result["limit_images_per_second"] == pytest.approx(40.0)
    assert max(result["cpu_share"], key=result["cpu_share"].get) == "decode"
    line = verdict({**result, "fraction_of_limit": 0.95})
    assert line.startswith("bound by image decoding") and "95%" in line


def test_others_share_of_known_counts() -> None:
    assert others_share({}) is None
    import os

    cpus = os.cpu_count() or 1
    share = others_share({"others_cpu_s": 0.5 * cpus, "load_wall_s": 1.0})
    assert share == pytest.approx(0.5)
    record: dict = {}
    with OtherLoad(record):
        sum(range(10000))
    if Path("/proc/stat").exists():
        assert record["load_wall_s"] > 0 and record["others_cpu_s"] >= 0


def test_parse_list_and_names() -> None:
    assert parse_list("1, 8,32,8") == (1, 8, 32)
    assert parse_list("1,auto", allow_auto=True) == (1, None)
    with pytest.raises(BenchError, match="not a whole number"):
        parse_list("1,x")
    assert model_names(["a/m.onnx", "b/n.onnx"]) == ["m.onnx", "n.onnx"]
    assert model_names(["m.onnx", "m.onnx"]) == ["m.onnx", "m.onnx#2"]


def test_cpu_info_reads_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: Test CPU\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    cpu = cpu_info(str(info))
    assert cpu["avx2"] and cpu["avx512"] and cpu["vnni"]
    assert cpu["cores"] >= 1


@pytest.mark.parametrize(
    ("flags", "vnni"), [("avx2 avx_vnni", True), ("avx2 amx_int8", True), ("avx2 avx512f", False)]
)
def test_vnni_flag_decides_the_int8_warning_not_the_export(
    flags: str, vnni: bool, tmp_path: Path
) -> None:
    """machine.cpu_info reads VNNI (also for bench and doctor); export no longer follows the
    exporting CPU (models move: portable unless a target is named), load warns instead."""
    from edgecnn.export.quantize import QuantSettings
    from edgecnn.tools.machine import int8_target_problem

    info = tmp_path / "cpuinfo"
    info.write_text(f"model name\t: Test CPU\nflags\t\t: fpu {flags}\n")
    cpu = cpu_info(str(info))
    assert cpu["vnni"] is vnni
    assert QuantSettings().resolved().reduce_range is True
    vnni_model = QuantSettings(target="vnni").to_dict()
    assert (int8_target_problem(vnni_model, cpu) is None) is vnni
    assert cpu_info(str(tmp_path / "missing"))["vnni"] is False


# ----------------------------------------------------------------------------- modes + schema


def test_model_only_report_schema_and_provider(color_model_path: Path, tmp_path: Path) -> None:
    other = save(color_model(), tmp_path / "second.onnx")
    settings = Settings(batch_sizes=(1, 2), threads=(1, None), **FAST)
    report = Benchmark([str(color_model_path), str(other)], settings).run()
    assert {"schema", "environment", "models", "settings", "warmup", "model_only"} <= set(report)
    assert report["end_to_end"] == [] and not report["interrupted"]
    env = report["environment"]
    for key in ("provider", "onnxruntime", "opencv", "numpy", "cpu", "load_average"):
        assert key in env
    assert {"model", "avx2", "avx512", "vnni", "cores"} <= set(env["cpu"])
    session_provider = Classifier.load(color_model_path, provider="auto").provider
    assert env["provider"] == session_provider
    assert [m["provider"] for m in report["models"]] == [session_provider] * 2
    assert len(report["models"][0]["sha256"]) == 64
    assert report["models"][0]["precision"] == "fp32"
    rows = report["model_only"]
    assert len(rows) == 2 * 2 * 2  # models x batch sizes x thread counts
    for row in rows:
        assert set(row["latency_ms"]) == {
            "count", "min", "mean", "p50", "p90", "p95", "p99", "max",
        }  # fmt: skip
        assert row["latency_ms"]["count"] == 3
        assert row["images_per_second"] > 0 and "speedup_vs_first" in row
    assert {w["threads"] for w in report["warmup"]} == {"1", "auto"}
    assert all(w["session_s"] >= 0 and w["first_run_ms"] >= 0 for w in report["warmup"])
    json.dumps(report)  # JSON-ready


def test_end_to_end_mode(color_model_path: Path, color_folder: Path) -> None:
    settings = Settings(batch_sizes=(4,), threads=(1,), **FAST)
    report = Benchmark([str(color_model_path)], settings, images=color_folder).run()
    assert report["model_only"][0]["input"] == "images"
    (row,) = report["end_to_end"]
    assert row["images"] == 9 and row["ok"] == 9 and row["failed"] == 0
    for stage in ("decode", "preprocess", "postprocess"):
        assert row["one_core_ms"][stage]["count"] == 9
    assert set(row["in_pipeline_ms"]) == {"decode", "preprocess", "inference", "postprocess"}
    assert row["limit_images_per_second"] > 0 and row["fraction_of_limit"] > 0
    assert row["verdict"].startswith("bound by")


def test_cli_writes_json_markdown_plot(
    color_model_path: Path, color_folder: Path, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "r"
    result = run_bench(
        str(color_model_path),
        "--batch-sizes", "1,2", "--threads", "1", "--iterations", "2", "--warmup", "0",
        "--images", str(color_folder),
        "--json", f"{out}.json", "--markdown", f"{out}.md", "--plot", f"{out}.png",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "model only" in result.output and "bound by" in result.output
    report = json.loads(Path(f"{out}.json").read_text())
    assert report["schema"] == 1 and len(report["end_to_end"]) == 2
    assert "| model | threads | batch |" in Path(f"{out}.md").read_text()
    assert Path(f"{out}.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("flag", ["--json", "--markdown", "--plot"])
def test_bad_output_path_fails_before_measuring(
    flag: str, color_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_run(self: Benchmark) -> dict:
        raise AssertionError("measured before checking the output path")

    monkeypatch.setattr(Benchmark, "run", no_run)
    result = run_bench(str(color_model_path), flag, str(tmp_path / "missing" / "r.out"))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {flag} ") and "does not exist" in result.output
    assert result.output.count("\n") == 1


def test_write_errors_become_edgecnn_errors(tmp_path: Path) -> None:
    with pytest.raises(EdgecnnError, match="cannot write"):
        write_json(tmp_path / "gone" / "r.json", {"a": 1})
    write_json(tmp_path / "odd.json", {"path": "caf\udce9.jpg", "label": "é"})
    assert json.loads((tmp_path / "odd.json").read_text("utf-8")) == {
        "path": "caf\udce9.jpg", "label": "é"}  # fmt: skip


def test_progress_in_timed_loops_is_throttled(color_model_path: Path) -> None:
    messages: list[str] = []
    settings = Settings(batch_sizes=(1,), threads=(1,), iterations=3000, warmup=0)
    started = time.monotonic()
    report = Benchmark([str(color_model_path)], settings, progress=messages.append).run()
    seconds = time.monotonic() - started
    assert sum(len(r["samples_ms"]) for r in report["model_only"]) == 3000
    runs = [m for m in messages if m.endswith(" runs")]
    assert 1 <= len(runs) <= 2 + 5 * seconds, (len(runs), seconds)
    assert any(m.startswith("loading") for m in messages)  # phase messages always shown


def test_markdown_and_terminal_render_partial_reports(color_model_path: Path) -> None:
    run = Benchmark([str(color_model_path)], Settings(batch_sizes=(1,), threads=(1,), **FAST))
    run.run()
    report = run.interrupt()
    assert report["interrupted"]
    assert "INTERRUPTED" in bench_report.terminal(report)
    assert "INTERRUPTED" in bench_report.markdown(report)


def test_ctrl_c_reports_what_was_measured(color_model_path: Path) -> None:
    def progress(message: str) -> None:
        if message.endswith(" runs"):  # inside the first timed loop
            raise KeyboardInterrupt

    settings = Settings(batch_sizes=(1, 2), threads=(1,), iterations=50, warmup=0)
    run = Benchmark([str(color_model_path)], settings, progress=progress)
    with pytest.raises(KeyboardInterrupt):
        run.run()
    report = run.interrupt()
    assert report["interrupted"]
    assert report["model_only"] and report["model_only"][0]["latency_ms"]["count"] > 0


# ----------------------------------------------------------------------------- bad input


def test_model_that_cannot_load(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    result = run_bench(str(bad), "--iterations", "1")
    assert result.exit_code == 1
    assert "Error:" in result.output and "not a usable ONNX model" in result.output
    result = run_bench(str(tmp_path / "missing.onnx"), "--iterations", "1")
    assert result.exit_code == 1 and "no such model file" in result.output


def test_fixed_batch_dimension_rejects_batch_size(tmp_path: Path) -> None:
    fixed = save(color_model(batch=1), tmp_path / "fixed.onnx")
    result = run_bench(str(fixed), "--batch-sizes", "1,8", "--iterations", "1")
    assert result.exit_code == 1
    assert "fixed to 1" in result.output and "batch size 8" in result.output


def test_empty_image_folder(color_model_path: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_bench(str(color_model_path), "--images", str(empty), "--iterations", "1")
    assert result.exit_code == 1 and "empty" in result.output


def test_folder_without_images(color_model_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    result = run_bench(
        str(color_model_path), "--images", str(folder), "--iterations", "1", "--threads", "1"
    )
    assert result.exit_code == 1 and "no file could be decoded" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "0"], "--duration must be a positive"),
        (["--iterations", "0"], "--iterations must be >= 1"),
        (["--iterations", "2", "--duration", "1"], "not both"),
        (["--batch-sizes", "0"], "batch sizes must be >= 1"),
        (["--threads", "two"], "not a whole number"),
        (["--interpolation", "cubic"], "Invalid value for '--interpolation'"),
    ],
)
def test_bad_settings(color_model_path: Path, args: list[str], message: str) -> None:
    result = run_bench(str(color_model_path), *args)
    assert result.exit_code == 2, result.output  # usage errors, like Click's own
    assert "Error:" in result.output and message in result.output


# ----------------------------------------------------------------------------- interpolation


@pytest.fixture
def textured_folder(tmp_path: Path) -> Path:
    """Three noise images: unlike solid colours, their resized pixels depend on the resize."""
    folder = tmp_path / "textured"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        ok, data = cv2.imencode(".png", rng.integers(0, 256, (37, 53, 3), dtype=np.uint8))
        assert ok
        (folder / f"{i}.png").write_bytes(data.tobytes())
    return folder


def test_interpolation_is_the_one_bench_preprocesses_with(
    color_model_path: Path, textured_folder: Path
) -> None:
    settings = Settings(batch_sizes=(3,), threads=(1,), interpolation="nearest", **FAST)
    run = Benchmark([str(color_model_path)], settings, images=textured_folder)
    report = run.run()
    own = Classifier.load(color_model_path).spec.input
    kind, batch = run.inputs[replace(own, interpolation="nearest")]
    assert kind == "images" and report["model_only"][0]["input"] == "images"
    assert own.interpolation == "area"  # the model's own
    paths = [item.path for item in run.items]
    nearest = np.stack([load_image(p, replace(own, interpolation="nearest")) for p in paths])
    assert np.array_equal(batch, nearest)
    assert not np.array_equal(batch, np.stack([load_image(p, own) for p in paths]))
    (model,) = report["models"]
    assert model["interpolation"] == "nearest" and model["model_interpolation"] == "area"
    assert report["settings"]["interpolation"] == "nearest"
    assert report["end_to_end"][0]["ok"] == 3


def test_models_of_one_shape_but_different_preprocessing_get_their_own_pixels(
    color_model_path: Path, textured_folder: Path, tmp_path: Path
) -> None:
    """Prepared batches are shared by input spec, not by shape: a BGR, cropped model of the
    same 16x16x3 input as the RGB, stretched one is timed on pixels prepared its own way."""
    own = Classifier.load(color_model_path).spec.input
    bgr_crop = replace(own, color="bgr", fit="crop").to_dict()
    other = save(color_model(spec_overrides={"input": bgr_crop}), tmp_path / "bgr.onnx")
    settings = Settings(batch_sizes=(3,), threads=(1,), **FAST)
    run = Benchmark([str(color_model_path), str(other)], settings, images=textured_folder)
    run.run()
    paths = [item.path for item in run.items]
    specs = [own, Classifier.load(other).spec.input]
    assert specs[1] == replace(own, color="bgr", fit="crop")
    expected = {np.stack([load_image(p, spec) for p in paths]).tobytes() for spec in specs}
    assert len(expected) == 2  # the two preprocessings really give different pixels
    assert {batch.tobytes() for _, batch in run.inputs.values()} == expected


def test_bad_interpolation_is_a_bench_error() -> None:
    with pytest.raises(BenchError, match="`interpolation` 'cubic' is not one of"):
        Settings(interpolation="cubic")


@pytest.mark.parametrize("value", ["nearest", "area", None])
def test_cli_interpolation_is_reported_beside_the_models_own(
    value: str | None, color_model_path: Path, color_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r"
    result = run_bench(
        str(color_model_path), "--batch-sizes", "2", "--threads", "1", "--iterations", "1",
        "--warmup", "0", "--images", str(color_folder),
        "--json", f"{out}.json", "--markdown", f"{out}.md",
        *(["--interpolation", value] if value else []),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(Path(f"{out}.json").read_text())
    (model,) = report["models"]
    assert report["settings"]["interpolation"] == value
    assert model["interpolation"] == (value or "area")  # the model records area
    assert model["model_interpolation"] == "area"
    note = "interpolation nearest, not the model's own area"
    for text in (result.output, Path(f"{out}.md").read_text()):
        assert (note in " ".join(text.split())) == (value == "nearest")


def test_models_of_different_input_sizes_side_by_side(
    color_model_path: Path, tmp_path: Path
) -> None:
    bigger = save(color_model(size=(32, 32)), tmp_path / "color32.onnx")
    settings = Settings(batch_sizes=(3,), threads=(1,), **FAST)
    report = Benchmark([str(color_model_path), str(bigger)], settings).run()
    assert [m["input"] for m in report["models"]] == [[16, 16, 3], [32, 32, 3]]
    assert all(row["input"] == "synthetic" for row in report["model_only"])


@pytest.mark.slow
def test_keras_mode_and_tutorial_pipeline(
    color_model_path: Path, color_folder: Path, tmp_path: Path
) -> None:
    keras = pytest.importorskip("keras")
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    model.save(tmp_path / "tiny.keras")
    settings = Settings(batch_sizes=(2,), threads=(1,), interpolation="nearest", **FAST)
    report = Benchmark(
        [str(color_model_path)], settings, images=color_folder, keras=tmp_path / "tiny.keras"
    ).run()
    keras_rows = [r for r in report["model_only"] if r["keras"]]
    assert len(keras_rows) == 1 and keras_rows[0]["latency_ms"]["count"] == 3
    onnx_row = next(r for r in report["model_only"] if not r["keras"])
    assert onnx_row["speedup_vs_keras"] > 0
    assert report["keras_pipeline"]["images"] == 9
    assert report["keras_pipeline"]["interpolation"] == "nearest"  # the run's, Keras's too
    assert report["end_to_end"][0]["speedup_vs_keras_pipeline"] > 0
