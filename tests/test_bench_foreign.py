"""edgecnn bench on models from elsewhere: the flags that describe them (classify's), the
report's record of the preprocessing used, and errors that name flags.

Real onnxruntime sessions on a tiny float model built with onnx.helper (no edgecnn metadata)
and real image files; no test compares speeds.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import cv2
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgecnn import Foreign, InputSpec, load_image
from edgecnn.cli import cli
from edgecnn.cli.options import interpolation_option
from edgecnn.tools.bench_settings import Settings
from edgecnn.tools.model_bench import Benchmark
from tests.models import IR_VERSION, save

SIZE = 8
FAST = ["--batch-sizes", "3", "--threads", "1", "--iterations", "2", "--warmup", "0"]


def flat_model() -> onnx.ModelProto:
    """NHWC float [N, 8, 8, 3] -> Reshape -> MatMul -> Softmax: every pixel moves the scores,
    as a model exported elsewhere (input ``input``, output ``out``, no metadata)."""
    pixels = SIZE * SIZE * 3
    image = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", SIZE, SIZE, 3])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])
    weights = np.random.default_rng(0).normal(0, 0.05, (pixels, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Reshape", ["input", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["out"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(np.array([-1, pixels], np.int64), "shape"),
        numpy_helper.from_array(weights, "w"),
    ]
    graph = helper.make_graph(nodes, "flat", [image], [out], inits)
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=IR_VERSION
    )


@pytest.fixture
def foreign_path(tmp_path: Path) -> Path:
    return save(flat_model(), tmp_path / "foreign.onnx")


@pytest.fixture
def labels_path(tmp_path: Path) -> Path:
    path = tmp_path / "labels.txt"
    path.write_text("a\nb\nc\n")
    return path


@pytest.fixture
def textured(tmp_path: Path) -> Path:
    """Three tall noise images: unlike solid colours, their resized pixels depend on the
    resize; fitted by padding, they leave columns to pad at the sides."""
    folder = tmp_path / "textured"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        ok, data = cv2.imencode(".png", rng.integers(0, 256, (53, 37, 3), dtype=np.uint8))
        assert ok
        (folder / f"{i}.png").write_bytes(data.tobytes())
    return folder


def bench(*args: str) -> object:
    return CliRunner().invoke(cli, ["bench", *args])


def recording_runs(monkeypatch: pytest.MonkeyPatch) -> list[Benchmark]:
    """The Benchmarks the CLI runs (the real run, kept for a look at its prepared inputs)."""
    runs: list[Benchmark] = []
    real_run = Benchmark.run

    def run(self: Benchmark) -> dict:
        runs.append(self)
        return real_run(self)

    monkeypatch.setattr(Benchmark, "run", run)
    return runs


def test_a_described_foreign_model_runs_and_the_report_records_its_preprocessing(
    foreign_path: Path,
    labels_path: Path,
    textured: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = recording_runs(monkeypatch)
    out = tmp_path / "r.json"
    result = bench(
        str(foreign_path), *FAST, "--images", str(textured), "--json", str(out),
        "--labels", str(labels_path), "--input-size", f"{SIZE}x{SIZE}", "--scale", "1/255",
        "--fit", "pad", "--anchor", "left", "--pad-value", "128", "--interpolation", "nearest",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    (model,) = report["models"]
    assert model["preprocessing"] == {
        "source": "foreign", "color": "rgb", "fit": "pad", "interpolation": "nearest",
        "anchor": "left", "pad_value": 128, "scale": pytest.approx(1 / 255), "mean": [0.0],
        "std": [1.0], "logits": False,
    }  # fmt: skip
    # --interpolation is the model's preprocessing here, not an override of it
    assert model["interpolation"] == model["model_interpolation"] == "nearest"
    assert report["settings"]["interpolation"] is None
    assert "not the model's own" not in result.output
    described = "no edgecnn metadata, run as described: rgb, fit pad, interpolation nearest"
    assert described in " ".join(result.output.split())
    assert report["model_only"][0]["input"] == "images"
    assert report["end_to_end"][0]["ok"] == 3
    # the pixels the model ran on are those of the described preprocessing
    spec = InputSpec(SIZE, SIZE, 3, "rgb", "pad", "nearest", anchor="left", pad_value=128)
    (run,) = runs
    kind, batch = run.inputs[spec]
    paths = [item.path for item in run.items]
    assert kind == "images"
    assert np.array_equal(batch, np.stack([load_image(p, spec) for p in paths]))
    assert (batch[:, :, -1] == 128).all()  # anchored left: the padding is on the right
    assert not (batch[:, :, 0] == 128).all()


@pytest.mark.parametrize(("flag", "used"), [("nearest", "nearest"), (None, "bilinear")])
def test_the_interpolation_given_reaches_the_prepared_pixels(
    flag: str | None,
    used: str,
    foreign_path: Path,
    labels_path: Path,
    textured: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = recording_runs(monkeypatch)
    result = bench(
        str(foreign_path), *FAST, "--images", str(textured), "--labels", str(labels_path),
        "--input-size", f"{SIZE}x{SIZE}", "--fit", "stretch", "--scale", "1/255",
        *(["--interpolation", flag] if flag else []),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run,) = runs
    ((_, batch),) = run.inputs.values()
    paths = [item.path for item in run.items]
    for interpolation in ("nearest", "bilinear"):
        spec = InputSpec(SIZE, SIZE, 3, "rgb", "stretch", interpolation)
        expected = np.stack([load_image(p, spec) for p in paths])
        assert np.array_equal(batch, expected) == (interpolation == used), interpolation


def test_library_benchmark_takes_the_description(
    foreign_path: Path, labels_path: Path, textured: Path
) -> None:
    foreign = Foreign(
        ["a", "b", "c"], (SIZE, SIZE), fit="stretch", interpolation="area", scale=1 / 255
    )
    settings = Settings(batch_sizes=(3,), threads=(1,), iterations=2, warmup=0)
    run = Benchmark([str(foreign_path)], settings, images=textured, foreign=foreign)
    report = run.run()
    assert report["models"][0]["preprocessing"]["interpolation"] == "area"
    spec = InputSpec(SIZE, SIZE, 3, "rgb", "stretch", "area")
    _, batch = run.inputs[spec]
    assert np.array_equal(batch, np.stack([load_image(i.path, spec) for i in run.items]))


@pytest.mark.slow
def test_the_keras_baseline_resizes_as_the_described_model(
    foreign_path: Path, textured: Path, tmp_path: Path
) -> None:
    """A described model's interpolation is the Keras baseline's too (predict's inputs and
    the tutorials' pipeline), as --interpolation is for edgecnn models: it was bilinear."""
    keras = pytest.importorskip("keras")
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x)).save(tmp_path / "k.keras")
    foreign = Foreign(["a", "b", "c"], (SIZE, SIZE), interpolation="nearest", scale=1 / 255)
    settings = Settings(batch_sizes=(3,), threads=(1,), iterations=2, warmup=0)
    run = Benchmark(
        [str(foreign_path)], settings, images=textured, keras=tmp_path / "k.keras", foreign=foreign
    )
    report = run.run()
    assert report["keras_pipeline"]["interpolation"] == "nearest"
    keras_spec = InputSpec(SIZE, SIZE, 3, "rgb", "crop", "nearest")
    _, batch = run.inputs[keras_spec]
    assert np.array_equal(batch, np.stack([load_image(i.path, keras_spec) for i in run.items]))


def test_without_a_description_the_error_names_the_flags(foreign_path: Path) -> None:
    result = bench(str(foreign_path), *FAST)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
    assert "carries no edgecnn metadata" in result.output
    assert "--labels FILE --input-size HxW" in result.output
    assert "`labels`" not in result.output and "`input_size`" not in result.output


def test_description_flags_need_labels_and_size(
    foreign_path: Path, labels_path: Path, color_model_path: Path
) -> None:
    result = bench(str(foreign_path), *FAST, "--color", "bgr", "--logits")
    assert result.exit_code == 2
    assert "--color, --logits describe a model without edgecnn metadata" in result.output
    assert "--labels and --input-size" in result.output
    result = bench(str(foreign_path), *FAST, "--labels", str(labels_path))
    assert result.exit_code == 1 and "--labels and --input-size are needed together" in (
        result.output
    )
    # the description applies to every model of the run: an edgecnn model among them says so
    result = bench(
        str(foreign_path), str(color_model_path), *FAST,
        "--labels", str(labels_path), "--input-size", f"{SIZE}x{SIZE}", "--scale", "1/255",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "carries its own edgecnn metadata" in result.output and "--labels FILE" in result.output


def test_a_server_run_refuses_model_descriptions(labels_path: Path) -> None:
    result = bench(
        "--server", "http://127.0.0.1:9", "--labels", str(labels_path), "--input-size", "8x8"
    )
    assert result.exit_code == 2 and "--server measures the served model" in result.output


def test_engines_side_by_side_on_a_foreign_model(
    foreign_path: Path, labels_path: Path, tmp_path: Path
) -> None:
    """The top-1 reference (onnxruntime CPU) is loaded with the same description."""
    pytest.importorskip("openvino")
    out = tmp_path / "r.json"
    result = bench(
        str(foreign_path), *FAST, "--provider", "cpu,openvino", "--json", str(out),
        "--labels", str(labels_path), "--input-size", f"{SIZE}x{SIZE}", "--scale", "1/255",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["model_only"]
    assert {row["model"] for row in rows} == {"foreign.onnx [cpu]", "foreign.onnx [openvino]"}
    assert all(row["top1_agreement"] == 1.0 for row in rows)


@pytest.mark.parametrize("verb", ["classify", "live", "bench", "eval", "export"])
def test_every_verb_declares_the_same_interpolation(verb: str) -> None:
    """One declaration (cli/options.interpolation_option): same choices, no default; only the
    help says what the verb does with it."""
    shared = click.command()(interpolation_option("help")(lambda interpolation: None))
    command = cli.get_command(click.Context(cli), verb)
    assert command is not None
    (option,) = [p for p in command.params if p.name == "interpolation"]
    info = {k: v for k, v in option.to_info_dict().items() if k != "help"}
    assert info == {k: v for k, v in shared.params[0].to_info_dict().items() if k != "help"}
    assert list(info["type"]["choices"]) == ["nearest", "bilinear", "bicubic", "area"]
    refused = CliRunner().invoke(cli, [verb, "x", "y", "--interpolation", "cubic"])
    assert refused.exit_code == 2 and "Invalid value for '--interpolation'" in refused.output
