"""``edgecnn eval``: metrics through the edge runtime (.onnx) and through Keras, folder rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn.cli import cli
from edgecnn.data.datasets import find_images
from edgecnn.errors import DatasetError
from edgecnn.export.calibration_images import sample_evenly
from edgecnn.image_files import NOT_AN_IMAGE
from edgecnn.tools.evaluation import evaluate
from tests import keras_models as km
from tests.conftest import write_color_image


def colour_dataset(root: Path, per_class: int = 3, classes=("red", "green", "blue")) -> Path:
    for color in classes:
        (root / color).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            write_color_image(root / color / f"{i}.png", color)
    return root


def test_eval_onnx_reports_metrics_failures_json_and_png(
    color_model_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")  # --png needs the plot extra
    data = colour_dataset(tmp_path / "data" / "test")
    colour_dataset(tmp_path / "data", classes=("red",))  # ignored: test/ wins
    (data / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    write_color_image(data / "loose.png", "green")  # outside class folders: ignored, counted
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["eval", str(color_model_path), str(tmp_path / "data"), "--provider", "cpu", "--json",
         str(tmp_path / "r.json"), "--png", str(tmp_path / "cm.png")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "accuracy: 1.0000 on 9 images" in result.output
    assert "unreadable: 1 file(s)" in result.output and "broken.png" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["confusion_matrix"] == [[3, 0, 0], [0, 3, 0], [0, 0, 3]]
    assert report["format"] == "onnx" and "CPUExecutionProvider" in report["provider"]
    assert report["data_dir"].endswith("test") and report["ignored_unlabelled"] == 1
    assert report["ignored"] == [
        {"path": str(data / "loose.png"), "reason": "image outside any class folder"}]  # fmt: skip
    assert report["failures"][0]["path"].endswith("broken.png")
    assert {row["label"] for row in report["per_class"]} == {"red", "green", "blue"}
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_counts_every_image_and_lists_every_ignored_file(
    color_model_path: Path, tmp_path: Path
) -> None:
    """A .jfif / .gif is evaluated like classify would; any other file is listed, not dropped."""
    import cv2

    data = colour_dataset(tmp_path / "d", per_class=2)
    red = cv2.imread(str(data / "red" / "0.png"))
    assert cv2.imwrite(str(data / "red" / "photo.jpg"), red)
    (data / "red" / "photo.jpg").rename(data / "red" / "photo.jfif")
    gif = cv2.imencode(".gif", red)[1] if cv2.haveImageWriter("x.gif") else None
    if gif is not None:
        (data / "red" / "anim.gif").write_bytes(gif.tobytes())
    (data / "green" / "notes.txt").write_text("not an image")
    (data / "blue" / ".DS_Store").write_bytes(b"hidden")
    result = CliRunner().invoke(
        cli, ["eval", str(color_model_path), str(data), "--json", str(tmp_path / "r.json")]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    red_support = next(r["support"] for r in report["per_class"] if r["label"] == "red")
    assert red_support == 3 + (gif is not None) and report["failed"] == 0
    notes = {"path": str(data / "green" / "notes.txt"), "reason": NOT_AN_IMAGE}
    assert report["ignored"] == [notes]
    assert "ignored: 1 file(s) not counted" in result.output and "notes.txt" in result.output


def test_eval_on_a_subset_of_classes(color_model_path: Path, tmp_path: Path) -> None:
    data = colour_dataset(tmp_path / "d", per_class=2, classes=("blue", "green"))
    report = evaluate(color_model_path, data, provider="cpu")
    assert report["images"] == 4 and report["accuracy"] == 1.0
    assert report["labels"] == ["red", "green", "blue"]


@pytest.mark.parametrize(
    ("layout", "message"),
    [("unknown", "not labels of the model"), ("empty", "no image files"),
     ("missing", "does not exist")],
)  # fmt: skip
def test_eval_bad_folders_fail_with_one_line(
    layout: str, message: str, color_model_path: Path, tmp_path: Path
) -> None:
    data = tmp_path / "d"
    if layout == "unknown":
        colour_dataset(data, classes=("red",))
        (data / "purple").mkdir()
        write_color_image(data / "purple" / "p.png", "blue")
    elif layout == "empty":
        (data / "red").mkdir(parents=True)
    result = CliRunner().invoke(cli, ["eval", str(color_model_path), str(data)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output
    assert result.output.count("\n") == 1


@pytest.mark.parametrize("flag", ["--json", "--png"])
def test_eval_bad_output_path_fails_before_evaluating(
    flag: str, color_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgecnn.tools.evaluation

    def no_eval(*args: object, **kwargs: object) -> dict:
        raise AssertionError("evaluated before checking the output path")

    monkeypatch.setattr(edgecnn.tools.evaluation, "evaluate", no_eval)
    data = colour_dataset(tmp_path / "d")
    result = CliRunner().invoke(
        cli, ["eval", str(color_model_path), str(data), flag, str(tmp_path / "no" / "x")]
    )
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {flag} ") and "does not exist" in result.output


def test_sampling_is_balanced_and_deterministic(tmp_path: Path) -> None:
    colour_dataset(tmp_path / "train", per_class=5, classes=("red",))
    colour_dataset(tmp_path / "train", per_class=20, classes=("green", "blue"))
    items = find_images(tmp_path, ("train",)).images
    assert len(items) == 45 and {label for _, label in items} == {"red", "green", "blue"}
    picked = sample_evenly(items, 30)
    counts = {c: sum(1 for _, label in picked if label == c) for c in ("red", "green", "blue")}
    assert counts == {"red": 5, "green": 13, "blue": 12} or counts == {
        "red": 5, "green": 12, "blue": 13}  # fmt: skip
    assert picked == sample_evenly(items, 30)
    assert sample_evenly(items, 100) == items
    with pytest.raises(DatasetError, match="does not exist"):
        find_images(tmp_path / "x")


@pytest.mark.slow
def test_keras_and_onnx_evaluations_agree(tmp_path: Path) -> None:
    """The model users trained and the artifact they deploy give the same confusion matrix."""
    from edgecnn.export import ExportOptions, export_model

    data = km.write_dataset(tmp_path / "data", {"train": 60, "test": 20}, seed=1)
    images, labels = km.arrays(data, "train")
    model = km.train(km.build("logits"), images.astype("float32"), labels, epochs=6)
    run = km.write_run(tmp_path / "run", model, "logits")
    export_model(run, tmp_path / "m.onnx", ExportOptions(verify=data / "test", latency=False))
    keras_report = evaluate(run, data)
    onnx_report = evaluate(tmp_path / "m.onnx", data, provider="cpu")
    assert keras_report["format"] == "keras" and onnx_report["format"] == "onnx"
    assert keras_report["images"] == onnx_report["images"] == 60
    assert keras_report["confusion_matrix"] == onnx_report["confusion_matrix"]
    assert np.isclose(keras_report["accuracy"], onnx_report["accuracy"])
    assert onnx_report["accuracy"] > 0.8


def test_bundled_models_info_and_int8_within_a_point_of_fp32(tmp_path: Path) -> None:
    """The shipped pair: `info` shows the spec; int8 is as accurate as fp32 on fresh shapes."""
    from edgecnn.data.shapes import SHAPE_LABELS, generate_shapes
    from edgecnn.runtime.classifier import default_model_path

    result = CliRunner().invoke(cli, ["info"])
    assert result.exit_code == 0, result.output
    assert "circle, square, star, triangle" in result.output
    assert "96x96x3 rgb, fit crop" in result.output and "int8-static" in result.output

    generate_shapes(tmp_path / "held", 100, (96, 96), seed=777)  # seed unused by the build
    int8 = default_model_path("cpu")
    fp32 = int8.with_name("shapes-fp32.onnx")
    reports = {p.name: evaluate(p, tmp_path / "held", provider="cpu") for p in (fp32, int8)}
    assert all(r["labels"] == list(SHAPE_LABELS) for r in reports.values())
    acc32, acc8 = (reports[p.name]["accuracy"] for p in (fp32, int8))
    assert acc32 > 0.9
    assert acc8 >= acc32 - 0.01


def test_eval_reports_bf16_and_f16_agreement_with_fp32_on_the_same_images(tmp_path: Path) -> None:
    """--precision bf16/f16: evaluated on OpenVINO at that precision, plus top-1 agreement with
    fp32 on the very images evaluated; fp32's accuracy in that line is eval's own fp32 one."""
    pytest.importorskip("openvino")
    from edgecnn.data.shapes import generate_shapes
    from edgecnn.runtime.classifier import default_model_path

    generate_shapes(tmp_path / "held", 12, (96, 96), seed=778)
    fp32 = default_model_path("cpu").with_name("shapes-fp32.onnx")
    exact = evaluate(fp32, tmp_path / "held", provider="cpu")
    assert "engine_precision" not in exact
    for precision in ("bf16", "f16"):
        out = tmp_path / f"{precision}.json"
        result = CliRunner().invoke(
            cli, ["eval", str(fp32), str(tmp_path / "held"), "--precision", precision,
                  "--json", str(out)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        report = json.loads(out.read_text())
        check = report["engine_precision"]
        assert "OpenVINO" in report["provider"] and check["precision"] == precision
        assert check["images"] == report["images"] == 48
        assert check["differ"] == round((1 - check["top1_agreement"]) * 48)
        assert check["accuracy_fp32"] == pytest.approx(exact["accuracy"])
        assert check["accuracy"] == pytest.approx(report["accuracy"])
        assert 0 < check["max_abs_diff"] < 0.5  # reduced precision differs, a little
        line = next(x for x in result.output.splitlines() if x.startswith("engine precision"))
        assert f"agrees with fp32 on {check['top1_agreement']:.2%} of 48 images" in line
    result = CliRunner().invoke(
        cli, ["eval", str(fp32), str(tmp_path / "held"), "--precision", "bf16",
              "--provider", "cpu"],
    )  # fmt: skip
    assert result.exit_code != 0 and "--provider openvino" in result.output


def test_eval_at_a_reduced_precision_runs_each_image_once_on_each_engine(tmp_path: Path) -> None:
    """One classify pass does both: the reduced-precision engine runs each decoded image once
    (its predictions are eval's) and the fp32 reference runs the same arrays once; the broken
    image is a failure of that pass, left out of the comparison."""
    pytest.importorskip("openvino")
    from edgecnn import Classifier
    from edgecnn.data.shapes import generate_shapes
    from edgecnn.runtime.classifier import default_model_path
    from edgecnn.tools.engine_precision import open_reference
    from edgecnn.tools.evaluation import classify_labelled, labelled_images
    from tests.counting_engine import CountingEngine

    generate_shapes(tmp_path / "held", 5, (96, 96), seed=779)
    broken = sorted((tmp_path / "held").rglob("*.jpg"))[0]
    broken.write_bytes(broken.read_bytes()[:200])  # a JPEG cut short: found, fails to decode
    fp32 = default_model_path("cpu").with_name("shapes-fp32.onnx")
    loaded = Classifier.load(fp32, provider="openvino", precision="bf16")
    reduced = CountingEngine(loaded.engine)
    clf = Classifier(reduced, loaded.spec, path=loaded.path)
    reference = CountingEngine(open_reference(fp32))
    items, _, _ = labelled_images(tmp_path / "held", clf.spec.labels)
    y_true, y_pred, failures, agreement = classify_labelled(
        clf, items, 8, reference=reference, precision="bf16"
    )
    assert len(items) == 20 and [f["path"] for f in failures] == [str(broken)]
    assert agreement is not None and agreement.precision == "bf16"
    assert sum(reduced.sizes) == sum(reference.sizes) == agreement.images == len(y_pred) == 19
    right = sum(t == p for t, p in zip(y_true, y_pred, strict=True))
    assert agreement.accuracy == pytest.approx(right / 19)  # eval's own predictions
