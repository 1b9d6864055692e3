"""Export: the artifact contract, parity with Keras, quantization and its gate, bad input.

Real tiny Keras models trained for a few seconds on generated images; no mocks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from edgecnn.cli import cli
from edgecnn.errors import ExportError
from edgecnn.spec import METADATA_KEY, ModelSpec
from tests import keras_models as km

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train / validation / test splits, 3 classes of 32x32 PNGs."""
    root = tmp_path_factory.mktemp("shapes")
    return km.write_dataset(root, {"train": 100, "validation": 30, "test": 30})


@pytest.fixture(scope="module")
def trained(data: Path) -> object:
    """A logits model (like the CIFAR-10 tutorial's) trained to near-perfect accuracy."""
    images, labels = km.arrays(data, "train")
    return km.train(km.build("logits"), images.astype("float32"), labels)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, trained: object, data: Path) -> Path:
    return km.write_run(tmp_path_factory.mktemp("run") / "run", trained, "logits", data)


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory, run_dir: Path) -> Path:
    from edgecnn.export import ExportOptions, export_model

    out = tmp_path_factory.mktemp("out") / "model.onnx"
    export_model(run_dir, out, ExportOptions(latency=False))
    return out


@pytest.fixture(scope="module")
def int8(tmp_path_factory: pytest.TempPathFactory, run_dir: Path, data: Path) -> Path:
    from edgecnn.export import ExportOptions, export_model

    out = tmp_path_factory.mktemp("out") / "model-int8.onnx"
    options = ExportOptions(precision="int8", calibration=data, verify=data / "test", latency=False)
    export_model(run_dir, out, options)
    return out


def session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def probabilities(path: Path, images: np.ndarray) -> np.ndarray:
    return session(path).run(["probabilities"], {"image": images})[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".onnx", ".tmp"))


# --- the contract -------------------------------------------------------------------------------


def test_fp32_meets_the_artifact_contract(fp32: Path, data: Path) -> None:
    model = onnx.load(str(fp32))
    onnx.checker.check_model(model, full_check=True)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.name == "image"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and not dims[0].HasField("dim_value")
    assert [d.dim_value for d in dims[1:]] == [32, 32, 3]
    assert out.name == "probabilities"
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT

    images, _ = km.arrays(data, "test")
    for batch in (images[:1], images[:7], images):  # the batch really is dynamic
        probs = probabilities(fp32, batch)
        assert probs.shape == (len(batch), 3) and probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    meta = {p.key: p.value for p in model.metadata_props}
    spec = ModelSpec.from_json(meta[METADATA_KEY])
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert spec.labels == km.LABELS
    assert (spec.input.height, spec.input.width, spec.input.color) == (32, 32, "rgb")
    assert spec.input.fit == "stretch"
    assert spec.precision == "fp32" and spec.architecture == "tiny"
    assert spec.training == {"val_accuracy": 0.95, "epochs": 8, "best_epoch": 7, "images": 300}
    assert spec.verification["top1_agreement"] >= 0.999
    assert spec.extra["export"]["opset"] == 17
    assert spec.extra["export"]["softmax_appended"] is True  # config.json says logits

    report = json.loads(fp32.with_suffix(".report.json").read_text())
    assert report["precision"] == "fp32" and report["size_bytes"] == fp32.stat().st_size
    assert leftovers(fp32.parent) == ["model.onnx"]  # no temporary files left


def test_fp32_matches_keras(fp32: Path, trained: object, data: Path) -> None:
    from edgecnn.runtime.prediction import softmax

    images, labels = km.arrays(data, "test")
    reference = softmax(np.asarray(trained(images.astype("float32"), training=False)))
    probs = probabilities(fp32, images)
    assert np.abs(probs - reference).max() < 1e-4
    assert (probs.argmax(1) == reference.argmax(1)).all()
    assert (probs.argmax(1) == labels).mean() > 0.9  # the model learned something real


def test_logits_get_a_softmax_and_probabilities_do_not(tmp_path: Path, data: Path) -> None:
    from edgecnn.export import ExportOptions, export_model

    images, labels = km.arrays(data, "train")
    softmax_model = km.train(km.build("probabilities"), images.astype("float32"), labels, 2)
    softmax_run = km.write_run(tmp_path / "p", softmax_model, "auto")  # export detects it
    logits_run = km.write_run(tmp_path / "l", km.build("logits"), "auto")
    for run, kind in ((softmax_run, "probabilities"), (logits_run, "logits")):
        out = tmp_path / f"{kind}.onnx"
        result = export_model(run, out, ExportOptions(latency=False, verify=data / "test"))
        model = onnx.load(str(out))
        softmaxes = [n for n in model.graph.node if n.op_type == "Softmax"]
        assert len(softmaxes) == 1, kind  # the model's own, or the appended one; never two
        assert result.spec.extra["export"]["keras_output"] == kind
        probs = probabilities(out, km.arrays(data, "test")[0])
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


# --- quantization -------------------------------------------------------------------------------


def test_int8_is_smaller_and_agrees_with_fp32(int8: Path, fp32: Path, data: Path) -> None:
    images, _ = km.arrays(data, "test")
    assert int8.stat().st_size < 0.6 * fp32.stat().st_size
    q, f = probabilities(int8, images), probabilities(fp32, images)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-5)
    assert (q.argmax(1) == f.argmax(1)).mean() >= 0.95
    model = onnx.load(str(int8))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    spec = ModelSpec.from_json({p.key: p.value for p in model.metadata_props}[METADATA_KEY])
    assert spec.precision == "int8-static"
    quant = spec.quantization
    assert quant["format"] == "QDQ" and quant["activations"] == "uint8"
    assert quant["weights"] == "int8" and quant["per_channel"] is True
    assert isinstance(quant["reduce_range"], bool)
    assert quant["calibration_images"] == 300  # 100 per class from train/, sampled evenly
    # the metadata travels to other machines: no absolute build-machine paths in it
    assert quant["calibration_source"] == f"{data.name}/train"
    assert spec.verification["source"] == f"{data.name}/test"
    assert quant["top1_agreement_vs_fp32"] >= 0.95
    assert spec.verification["accuracy"] >= spec.verification["accuracy_keras"] - 0.01


@pytest.mark.parametrize("precision", ["fp16", "int8-dynamic"])
def test_other_precisions_keep_the_contract(
    precision: str, run_dir: Path, fp32: Path, data: Path, tmp_path: Path
) -> None:
    from edgecnn.export import ExportOptions, export_model

    out = tmp_path / f"{precision}.onnx"
    export_model(run_dir, out, ExportOptions(precision=precision, latency=False))
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    images, _ = km.arrays(data, "test")
    q, f = probabilities(out, images), probabilities(fp32, images)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-3)
    assert (q.argmax(1) == f.argmax(1)).mean() >= 0.95


def test_gate_refuses_int8_calibrated_on_blank_images(
    run_dir: Path, data: Path, tmp_path: Path
) -> None:
    """Black calibration images give every activation a range of ~0: the model collapses."""
    from edgecnn.export import ExportOptions, export_model

    blank = tmp_path / "blank"
    blank.mkdir()
    for i in range(20):
        cv2.imwrite(str(blank / f"{i}.png"), np.zeros((32, 32, 3), np.uint8))
    out = tmp_path / "broken.onnx"
    options = ExportOptions(
        precision="int8", calibration=blank, verify=data / "test", latency=False
    )
    with pytest.raises(ExportError, match=r"loses .* points .*`max_accuracy_drop` 1"):
        export_model(run_dir, out, options)
    assert leftovers(tmp_path) == []

    forced = ExportOptions(
        precision="int8", calibration=blank, verify=data / "test", latency=False, force=True
    )
    result = export_model(run_dir, out, forced)
    assert out.exists() and any("`force`" in w for w in result.report["warnings"])
    assert result.spec.verification["accuracy"] < result.spec.verification["accuracy_keras"]


# --- models trained elsewhere -------------------------------------------------------------------


def test_foreign_model_with_flags_and_scale(tmp_path: Path, data: Path) -> None:
    """A model trained on float 0..1 input, no run folder: flags describe it, scale is baked in."""
    from edgecnn.export import ExportOptions, export_model
    from edgecnn.export.model_source import InputOverrides
    from edgecnn.normalization import parse_normalization

    images, labels = km.arrays(data, "train")
    model = km.train(km.build("probabilities", rescale=False), images / 255.0, labels, 3)
    model.save(tmp_path / "elsewhere.keras")
    (tmp_path / "labels.txt").write_text("\n".join(km.LABELS) + "\n")
    no_size = ExportOptions(overrides=InputOverrides(labels_file=str(tmp_path / "labels.txt")))
    with pytest.raises(ExportError, match="`input_size` HxW"):
        export_model(tmp_path / "elsewhere.keras", tmp_path / "x.onnx", no_size)

    options = ExportOptions(
        overrides=InputOverrides(
            labels_file=str(tmp_path / "labels.txt"), input_size="32x32", fit="pad"
        ),
        normalization=parse_normalization("1/255"),
        verify=data / "test",
        latency=False,
    )
    result = export_model(tmp_path / "elsewhere.keras", tmp_path / "f.onnx", options)
    assert result.spec.input.fit == "pad"
    assert result.spec.extra["export"]["normalization"]["scale"] == pytest.approx(1 / 255)
    test_images, _ = km.arrays(data, "test")
    reference = np.asarray(model(test_images / 255.0, training=False))
    assert np.abs(probabilities(tmp_path / "f.onnx", test_images) - reference).max() < 1e-4


def test_grouped_convolution_and_exact_gelu(tmp_path: Path, data: Path) -> None:
    """ConvNeXt's building blocks: Keras runs a grouped convolution in a nested XLA function
    and TensorFlow's exact GELU uses Erfc, neither of which tf2onnx converts as they are."""
    import keras

    from edgecnn.export import ExportOptions, export_model
    from edgecnn.export.model_source import InputOverrides

    keras.utils.set_random_seed(0)
    inputs = keras.Input((km.SIZE, km.SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3)(x)
    x = keras.layers.Conv2D(8, 3, groups=4, activation="gelu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(len(km.LABELS), activation="softmax")(x))
    images, labels = km.arrays(data, "train")
    km.train(model, images.astype("float32"), labels, 3)
    model.save(tmp_path / "grouped.keras")
    (tmp_path / "labels.txt").write_text("\n".join(km.LABELS) + "\n")
    options = ExportOptions(
        overrides=InputOverrides(labels_file=str(tmp_path / "labels.txt"), input_size="32x32"),
        verify=data / "test",
        latency=False,
    )
    export_model(tmp_path / "grouped.keras", tmp_path / "g.onnx", options)

    graph = onnx.load(str(tmp_path / "g.onnx")).graph
    groups = [
        a.i for n in graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"
    ]
    assert 4 in groups and "Erf" in {n.op_type for n in graph.node}
    test_images, _ = km.arrays(data, "test")
    reference = np.asarray(model(test_images.astype("float32"), training=False))
    assert np.abs(probabilities(tmp_path / "g.onnx", test_images) - reference).max() < 1e-4


def test_dead_model_is_refused_and_forced_with_a_warning(tmp_path: Path, data: Path) -> None:
    """Outputs that do not depend on the input pass every parity gate; the health check does not."""
    from edgecnn.export import ExportOptions, export_model
    from edgecnn.export.model_source import InputOverrides

    model = km.build("probabilities")
    last = model.layers[-1]
    kernel = last.get_weights()[0]
    last.set_weights([np.zeros_like(kernel), np.array([0.3, -0.1, 0.2], np.float32)])
    model.save(tmp_path / "dead.keras")
    (tmp_path / "labels.txt").write_text("\n".join(km.LABELS) + "\n")
    overrides = InputOverrides(labels_file=str(tmp_path / "labels.txt"), input_size="32x32")
    out = tmp_path / "dead.onnx"
    options = ExportOptions(overrides=overrides, verify=data / "test", latency=False)
    with pytest.raises(ExportError, match=r"looks dead.*do not depend on the input"):
        export_model(tmp_path / "dead.keras", out, options)
    assert leftovers(tmp_path) == []
    forced = ExportOptions(overrides=overrides, verify=data / "test", latency=False, force=True)
    result = export_model(tmp_path / "dead.keras", out, forced)
    warnings = " ".join(result.report["warnings"])
    assert out.exists() and "looks dead" in warnings and "--force" in warnings
    assert "near chance" in warnings  # every image gets class 0: 33% on 3 balanced classes


# --- bad input: clear errors, no .onnx left behind ----------------------------------------------


def test_lambda_layer_needs_unsafe(tmp_path: Path, run_dir: Path) -> None:
    import keras

    from edgecnn.export import ExportOptions, export_model
    from edgecnn.export.keras_model import load_keras

    inputs = keras.Input((km.SIZE, km.SIZE, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(x))
    run = tmp_path / "lambda"
    km.write_run(run, keras.Model(inputs, outputs), "probabilities")
    with pytest.raises(ExportError, match=r"unsafe deserialization.*`unsafe`"):
        export_model(run, tmp_path / "l.onnx", ExportOptions(latency=False))
    assert leftovers(tmp_path) == []
    assert load_keras(run / "model.keras", unsafe=True) is not None


def test_not_a_keras_file(tmp_path: Path) -> None:
    from edgecnn.export import ExportOptions, export_model

    fake = tmp_path / "model.keras"
    fake.write_text("this is not a model")
    (tmp_path / "labels.json").write_text(json.dumps(list(km.LABELS)))
    from edgecnn.export.model_source import InputOverrides

    options = ExportOptions(overrides=InputOverrides(input_size="32x32"))
    with pytest.raises(ExportError, match="not a Keras model file"):
        export_model(fake, tmp_path / "x.onnx", options)
    png = tmp_path / "image.keras"
    cv2.imwrite(str(tmp_path / "i.png"), np.zeros((4, 4, 3), np.uint8))
    png.write_bytes((tmp_path / "i.png").read_bytes())
    with pytest.raises(ExportError, match="not a Keras model file"):
        export_model(png, tmp_path / "x.onnx", options)
    assert leftovers(tmp_path) == []


def test_output_that_is_not_a_class_vector(tmp_path: Path) -> None:
    import keras

    from edgecnn.export import ExportOptions, export_model

    inputs = keras.Input((km.SIZE, km.SIZE, 3))
    feature_map = keras.layers.Conv2D(3, 3)(inputs)  # [batch, 30, 30, 3]: not a class vector
    run = km.write_run(tmp_path / "r", keras.Model(inputs, feature_map), "probabilities")
    with pytest.raises(ExportError, match="not a class vector"):
        export_model(run, tmp_path / "x.onnx", ExportOptions(latency=False))
    assert leftovers(tmp_path) == []


def test_label_count_mismatch(tmp_path: Path, run_dir: Path) -> None:
    from edgecnn.export import ExportOptions, export_model
    from edgecnn.export.model_source import InputOverrides

    (tmp_path / "two.txt").write_text("cat\ndog\n")
    options = ExportOptions(overrides=InputOverrides(labels_file=str(tmp_path / "two.txt")))
    with pytest.raises(ExportError, match="outputs 3 classes but there are 2 labels"):
        export_model(run_dir, tmp_path / "x.onnx", options)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("content", ["empty", "text", "corrupt"])
def test_unusable_calibration_folder(content: str, tmp_path: Path, run_dir: Path) -> None:
    from edgecnn.export import ExportOptions, export_model

    calib = tmp_path / "calib"
    calib.mkdir()
    if content == "text":
        (calib / "notes.txt").write_text("no images here")
    elif content == "corrupt":
        (calib / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
        (calib / "b.jpg").write_bytes(b"not a jpeg")
    options = ExportOptions(precision="int8", calibration=calib, latency=False)
    expected = "could be read as images" if content == "corrupt" else "no image files"
    with pytest.raises(ExportError, match=f"`calibration`: .*{expected}"):
        export_model(run_dir, tmp_path / "x.onnx", options)
    assert leftovers(tmp_path) == []


def test_output_in_a_missing_folder(tmp_path: Path, run_dir: Path) -> None:
    from edgecnn.export import export_model

    with pytest.raises(ExportError, match="does not exist"):
        export_model(run_dir, tmp_path / "missing" / "x.onnx")
    assert not (tmp_path / "missing").exists()


# --- the CLI and the edge side ------------------------------------------------------------------


def test_cli_export_prints_the_report_and_fails_with_one_line(
    tmp_path: Path, run_dir: Path, data: Path
) -> None:
    runner = CliRunner()
    out = tmp_path / "cli.onnx"
    result = runner.invoke(
        cli, ["export", str(run_dir), "-o", str(out), "--verify", str(data), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "fp32 vs Keras" in result.output and "latency (CPU)" in result.output
    assert "accuracy" in result.output
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert report["latency"]["single_ms"] > 0 and report["latency"]["batch_size"] == 32
    assert report["verification"]["source"].endswith("validation")  # the folder rule

    bad = runner.invoke(cli, ["export", str(run_dir), "-o", str(tmp_path / "no" / "x.onnx")])
    assert bad.exit_code == 1
    assert bad.output.startswith("Error: ") and bad.output.count("\n") == 1


def test_cli_export_reports_the_engine_precision_agreement_with_fp32(
    tmp_path: Path, run_dir: Path, data: Path
) -> None:
    """--engine-precision bf16: the written model on OpenVINO at bf16 against fp32, on the very
    verification images (fp32's accuracy in it is the verification's own)."""
    pytest.importorskip("openvino")
    out = tmp_path / "bf16.onnx"
    result = CliRunner().invoke(
        cli, ["export", str(run_dir), "-o", str(out), "--verify", str(data),
              "--engine-precision", "bf16", "--no-latency", "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.with_suffix(".report.json").read_text())
    check, verification = report["engine_precision"], report["verification"]
    assert check["precision"] == "bf16" and check["ran"] in ("bf16", "f32")
    assert check["images"] == verification["images"] > 0
    assert "OpenVINO" in check["engine"]  # the reduced side really ran on OpenVINO
    assert check["accuracy_fp32"] == pytest.approx(verification["accuracy"], abs=1e-6)
    assert 0 <= check["max_abs_diff"] < 0.5
    line = next(x for x in result.output.splitlines() if x.startswith("engine precision"))
    images = check["images"]
    assert f"bf16{'' if check['ran'] == 'bf16' else ' (OpenVINO ran'}" in line
    assert f"agrees with fp32 on {check['top1_agreement']:.2%} of {images} images" in line


def test_exported_model_runs_without_tensorflow(fp32: Path, data: Path) -> None:
    """A fresh process: the runtime loads the file and eval runs it; TensorFlow never loads."""
    code = f"""
import sys
from edgecnn.runtime.classifier import Classifier
from edgecnn.tools.evaluation import evaluate
clf = Classifier.load({str(fp32)!r}, provider="cpu")
assert clf.spec.labels == {km.LABELS!r}, clf.spec.labels
report = evaluate({str(fp32)!r}, {str(data)!r}, provider="cpu")
assert report["accuracy"] > 0.9, report["accuracy"]
assert report["images"] == 90 and report["data_dir"].endswith("test")
assert "tensorflow" not in sys.modules and "keras" not in sys.modules
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_real_keras_model_where_onnx_is_expected(run_dir: Path, fp32: Path) -> None:
    """The run folder and the model.keras `edgecnn train` wrote, given to the edge runtime: the
    message says what they are and how to export them; an ONNX file given to export says so."""
    runner = CliRunner()
    for model in (run_dir / "model.keras", run_dir):
        result = runner.invoke(cli, ["info", str(model)])
        assert result.exit_code == 1 and f"edgecnn export {model}" in result.output, result.output
    result = runner.invoke(cli, ["export", str(fp32), "-o", str(fp32.with_name("again.onnx"))])
    assert result.exit_code == 1 and "already an ONNX model" in result.output


def test_export_runs_tensorflow_in_a_child_process(run_dir: Path, tmp_path: Path) -> None:
    """The calling process never imports TensorFlow (its memory is the child's, returned when
    the child exits); the export it gets is the same verified file."""
    out = tmp_path / "child.onnx"
    code = f"""
import sys
from edgecnn.export import ExportOptions, export_model
result = export_model({str(run_dir)!r}, {str(out)!r}, ExportOptions(latency=False))
assert result.report["verification"]["top1_agreement"] >= 0.999, result.report
assert not {{"tensorflow", "keras", "tf2onnx"}} & set(sys.modules)
print(result.spec.extra["export"]["keras"], result.spec.extra["export"]["tf2onnx"])
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    import keras
    import tf2onnx

    assert proc.stdout.split() == [keras.__version__, tf2onnx.__version__]
    assert onnx.load(str(out)).graph.input[0].name == "image"
