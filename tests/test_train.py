"""Training: architectures, the data cache, RUN_DIR contents, bad inputs and the CLI.

Tests marked slow train real (tiny) Keras models: 32x32 inputs, a few dozen images, 1-3 epochs.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn.cli import cli
from edgecnn.data.shapes import SHAPE_LABELS, generate_shapes
from edgecnn.errors import DatasetError, EdgecnnError
from edgecnn.preprocess import load_image
from edgecnn.run_config import RunConfig
from edgecnn.spec import InputSpec
from edgecnn.train import ARCHITECTURES, RUN_FILES, build_model, train
from edgecnn.train.data_cache import build_cache, parse_augment

#: Keras 3.15 + numpy 2 warn inside fit (keras/backend/tensorflow/core.py); not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

#: Parameter counts the tutorials report (or that follow from their layer lists).
EXPECTED_PARAMS = {
    ("plant", 3): 69_246_659,
    ("food", 10): 10_588_458,
    ("cifar10", 10): 122_570,
    ("mnist", 10): 93_322,
    ("flowers", 5): 6_649_925,
}


def write_stripes(root: Path, per_class: int, size: int = 32) -> Path:
    """An easy 2-class set: horizontal vs vertical stripes, random colours, phase and period."""
    rng = np.random.default_rng(0)
    for label in ("horizontal", "vertical"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            period = int(rng.integers(4, 9))
            phase = int(rng.integers(0, period))
            ramp = ((np.arange(size) + phase) // (period // 2)) % 2
            mask = np.repeat(ramp[:, None], size, axis=1).astype(bool)
            if label == "vertical":
                mask = mask.T
            image = np.empty((size, size, 3), np.uint8)
            image[:] = rng.integers(0, 100, 3)
            image[mask] = rng.integers(155, 256, 3)
            cv2.imwrite(str(root / label / f"{i:03d}.png"), image)
    return root


def write_image(path: Path, kind: str = "rgb") -> None:
    """A small 24x32 image: rgb jpg, gray / rgba / 16-bit png, or a corrupt jpg."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    if kind == "corrupt":
        path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        return
    shape = {"gray": (24, 32), "rgba": (24, 32, 4)}.get(kind, (24, 32, 3))
    dtype = np.uint16 if kind == "16bit" else np.uint8
    image = rng.integers(0, np.iinfo(dtype).max, shape, dtype)
    assert cv2.imwrite(str(path), image)


@pytest.fixture(scope="module")
def tiny_shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shapes at 32x32 with train / validation / test folders (12 / 4 / 4 per class)."""
    root = tmp_path_factory.mktemp("shapes")
    generate_shapes(root, 20, (32, 32), seed=3, ratios=(0.6, 0.2, 0.2))
    return root


# --- architectures -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_architecture_builds(name: str) -> None:
    arch = ARCHITECTURES[name]
    classes = next((n for (a, n) in EXPECTED_PARAMS if a == name), 4)
    model = build_model(name, classes, **({"weights": "none"} if arch.backbone else {}))
    h, w = arch.input_size
    assert tuple(model.input.shape) == (None, h, w, arch.channels)
    assert tuple(model.output.shape) == (None, classes)
    if arch.backbone is None:  # backbones rescale inside (or get their own preprocess layer)
        assert model.layers[1].__class__.__name__ == "Rescaling"
    assert model.input.dtype == "float32"
    if (name, classes) in EXPECTED_PARAMS:
        assert model.count_params() == EXPECTED_PARAMS[(name, classes)]
    last = model.layers[-1].get_config()["activation"]
    assert last == ("linear" if arch.output == "logits" else "softmax")


@pytest.mark.slow
def test_edge_is_small_and_input_size_overridable() -> None:
    model = build_model("edge", 4)
    assert model.count_params() * 4 < 1_000_000  # float32 weights under 1 MB
    small = build_model("edge", 7, (48, 64))
    assert tuple(small.input.shape) == (None, 48, 64, 3)
    assert tuple(small.output.shape) == (None, 7)


@pytest.mark.slow
def test_too_small_input_is_a_clear_error() -> None:
    with pytest.raises(EdgecnnError, match="too small for architecture 'food'"):
        build_model("food", 10, (32, 32))


# --- data ----------------------------------------------------------------------------------------


def test_cache_goes_through_load_image_and_skips_bad_files(tiny_shapes: Path, tmp_path) -> None:
    spec = InputSpec(24, 24, interpolation="area")
    good = sorted((tiny_shapes / "train" / "star").glob("*.jpg"))[:3]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8garbage")
    cache = build_cache([(good[0], 2), (bad, 1), (good[1], 2), (good[2], 2)], spec, workers=2)
    assert len(cache) == 3
    assert cache.paths == [str(p) for p in good]
    assert cache.targets.tolist() == [2, 2, 2]
    assert np.array_equal(cache.images[1], load_image(good[1], spec))
    assert cache.skipped[0][0] == str(bad)


def test_parse_augment() -> None:
    default = {"flip": 1.0, "rotation": 0.3}
    assert parse_augment("default", default) == default
    assert parse_augment("none", default) == {}
    assert parse_augment("flip,zoom=0.2,rotation", default) == {
        "flip": 1.0,
        "zoom": 0.2,
        "rotation": 0.3,
    }
    with pytest.raises(ValueError, match="unknown augmentation"):
        parse_augment("swirl", default)
    with pytest.raises(ValueError, match=r"0\.\.1"):
        parse_augment("zoom=3", default)


@pytest.mark.slow
def test_augmenter_keeps_shape_and_range() -> None:
    from edgecnn.train.data_cache import make_augmenter

    augment = make_augmenter(parse_augment("default", ARCHITECTURES["edge"].augment), seed=1)
    batch = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    out = np.asarray(augment(batch))
    assert out.shape == batch.shape
    assert out.min() >= 0 and out.max() <= 255
    assert not np.allclose(out, batch)


# --- bad input, before TensorFlow is needed ------------------------------------------------------


def test_missing_data_dir(tmp_path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        train(tmp_path / "nope", out=tmp_path / "run")


def test_num_classes_must_match_folders(tiny_shapes: Path, tmp_path) -> None:
    with pytest.raises(DatasetError, match="`num_classes` 3 but"):
        train(tiny_shapes, out=tmp_path / "run", num_classes=3)


def test_run_dir_with_model_needs_force(tiny_shapes: Path, tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"previous model")
    with pytest.raises(EdgecnnError, match="`force`"):
        train(tiny_shapes, out=run)
    assert (run / "model.keras").read_bytes() == b"previous model"


def test_missing_tensorflow_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
        "from edgecnn._deps import keras\n"
        "from edgecnn.errors import MissingDependencyError\n"
        "try:\n    keras()\nexcept MissingDependencyError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'edgecnn[train]'" in out.stdout


def test_cli_bad_inputs_exit_1(tmp_path) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["train", str(tmp_path / "nope"), "--out", str(tmp_path / "r")])
    assert missing.exit_code == 1
    assert missing.output.startswith("Error:") and "does not exist" in missing.output
    write_stripes(tmp_path / "one", 2)
    single = tmp_path / "single"
    (tmp_path / "one" / "vertical").rename(tmp_path / "vertical")
    (tmp_path / "one").rename(single)
    result = runner.invoke(cli, ["train", str(single), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "only one class" in result.output
    aug = runner.invoke(cli, ["train", str(tmp_path), "--augment", "swirl"])
    assert aug.exit_code == 1 and "unknown augmentation" in aug.output
    listed = runner.invoke(cli, ["train", "--list-archs"])
    assert listed.exit_code == 0
    assert all(name in listed.output for name in ARCHITECTURES)


# --- real training -------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_writes_a_complete_run_dir(tiny_shapes: Path, tmp_path) -> None:
    import keras

    run = tmp_path / "run"
    lines: list[str] = []
    result = train(
        tiny_shapes,
        "edge",
        run,
        input_size=(32, 32),
        epochs=2,
        batch_size=16,
        seed=1,
        log=lines.append,
    )
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    assert sum(line.startswith("epoch ") for line in lines) == result.epochs_run == 2
    assert json.loads((run / "labels.json").read_text()) == {"labels": list(SHAPE_LABELS)}
    config = json.loads((run / "config.json").read_text())
    assert config["input"] == {
        "height": 32,
        "width": 32,
        "channels": 3,
        "color": "rgb",
        "fit": "crop",
        "interpolation": "area",
    }
    optional = {"anchor", "pad_value"}  # written only when not the default
    assert set(config["input"]) == {f.name for f in dataclasses.fields(InputSpec)} - optional
    assert config["architecture"] == "edge" and config["output"] == "probabilities"
    assert config["labels"] == list(SHAPE_LABELS) and config["seed"] == 1
    assert config["data"]["layout"] == "split"
    assert config["data"]["counts"]["train"] == dict.fromkeys(SHAPE_LABELS, 12)
    assert len(config["validation_files"]) == 16 and len(config["test_files"]) == 16
    assert all(Path(p).is_file() for p in config["validation_files"] + config["test_files"])
    assert config["result"]["epochs_run"] == 2 and config["result"]["train_images"] == 48
    assert 1 <= config["result"]["best_epoch"] <= 2
    assert config["result"]["val_accuracy"] == pytest.approx(result.val_accuracy)
    assert RunConfig.read(run / "config.json") == result.config  # the typed round trip
    for key in (
        "epochs",
        "batch_size",
        "learning_rate",
        "optimizer",
        "loss",
        "patience",
        "monitor",
        "augment",
        "edgecnn_version",
        "created",
    ):
        assert key in config, key
    with open(run / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2
    assert {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(rows[0])
    report = json.loads((run / "report.json").read_text())
    assert [r["label"] for r in report["per_class"]] == list(SHAPE_LABELS)
    assert report["images"] == 16
    model = keras.models.load_model(run / "model.keras")
    probs = model.predict(np.full((2, 32, 32, 3), 200, np.float32), verbose=0)
    assert probs.shape == (2, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert cv2.imread(str(run / "history.png")) is not None
    assert cv2.imread(str(run / "confusion_matrix.png")) is not None


@pytest.mark.slow
def test_easy_set_is_learned_well_above_chance(tmp_path) -> None:
    data = write_stripes(tmp_path / "stripes", 40)
    result = train(
        data,
        "cifar10",
        tmp_path / "run",
        epochs=3,
        batch_size=16,
        augment="none",
        val_split=0.25,
        seed=0,
    )
    assert result.labels == ("horizontal", "vertical")
    assert result.val_accuracy >= 0.8  # chance is 0.5
    assert result.config.output == "logits"
    assert result.config.data.counts["validation"] == {"horizontal": 10, "vertical": 10}


@pytest.mark.slow
def test_mixed_formats_are_converted_and_broken_files_skipped(tmp_path) -> None:
    root = tmp_path / "mixed"
    for label in ("a", "b"):
        for i in range(6):
            write_image(root / label / f"{i}.jpg")
    write_image(root / "a" / "gray.png", "gray")
    write_image(root / "a" / "alpha.png", "rgba")
    write_image(root / "b" / "deep.png", "16bit")
    write_image(root / "b" / "broken.jpg", "corrupt")
    (root / "b" / "notes.txt").write_text("not an image")
    warnings: list[str] = []
    result = train(root, "mnist", tmp_path / "run", epochs=1, val_split=0.3, warn=warnings.append)
    assert [Path(p).name for p, _ in result.skipped] == ["broken.jpg"]
    assert any("broken.jpg" in w for w in warnings)
    config = result.config
    assert config.input.color == "gray" and config.input.channels == 1
    assert [Path(p).name for p, _ in config.data.skipped] == ["broken.jpg"]
    assert [Path(p).name for p, _ in config.data.ignored] == ["notes.txt"]
    counts = config.data.counts
    assert sum(counts["train"].values()) + sum(counts["validation"].values()) == 15


@pytest.mark.slow
def test_cli_train_and_force(tiny_shapes: Path, tmp_path) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    args = [
        "train",
        str(tiny_shapes),
        "--out",
        str(run),
        "--input-size",
        "32",
        "--epochs",
        "1",
        "--arch",
        "flowers",
        "--augment",
        "flip,rotation=0.1",
    ]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "epoch 1/1" in first.output and "best val_accuracy" in first.output
    assert "accuracy:" in first.output  # the test-split report
    again = runner.invoke(cli, args)
    assert again.exit_code == 1 and "--force" in again.output
    forced = runner.invoke(cli, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert json.loads((run / "config.json").read_text())["augment"] == {
        "flip": 1.0,
        "rotation": 0.1,
    }


# --- early stopping and transfer learning ---------------------------------------------------------


def test_stopping_schedule_scales_with_the_epoch_budget() -> None:
    from edgecnn.train.train_settings import stopping_schedule

    # the case: mnist (patience 3) asked for 15 epochs
    assert stopping_schedule(3, 15, None) == {
        "patience": 4,
        "start_from_epoch": 7,
        "lr_patience": 2,
    }
    assert stopping_schedule(3, 40, None)["patience"] == 10
    assert stopping_schedule(6, 8, None)["patience"] == 6  # never below the architecture's
    assert stopping_schedule(3, 15, 0)["patience"] == 0  # 0: never stop early
    assert stopping_schedule(3, 15, 2) == {"patience": 2, "start_from_epoch": 7, "lr_patience": 1}


@pytest.mark.slow
def test_transfer_learning_two_phases_and_export(tiny_shapes: Path, tmp_path) -> None:
    """MobileNetV3Small from random weights at 64x64: head first, then the backbone's top; the
    run records its schedule, and the exported model needs no normalization flags."""
    from edgecnn.export import ExportOptions, export_model

    lines: list[str] = []
    result = train(
        tiny_shapes,
        "mobilenetv3small",
        tmp_path / "run",
        input_size=(64, 64),
        epochs=3,
        batch_size=8,
        weights="none",
        augment="none",
        log=lines.append,
    )
    settings = result.config.settings
    assert settings.weights == "none" and settings.head_epochs == 2
    assert settings.fine_tune_learning_rate == pytest.approx(settings.learning_rate / 10)
    assert result.epochs_run == 3
    assert any(line.startswith("phase 1") for line in lines)
    assert any(line.startswith("phase 2: fine-tuning the top") for line in lines)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["weights"] == "none" and saved["head_epochs"] == 2
    assert saved["min_delta"] > 0 and saved["lr_schedule"] == "plateau"
    out = tmp_path / "m.onnx"
    report = export_model(tmp_path / "run", out, ExportOptions(latency=False, force=True)).report
    assert report["verification"]["top1_agreement"] >= 0.999


@pytest.mark.slow
def test_imagenet_weights_offline_are_refused_naming_the_cache(tmp_path) -> None:
    """No network (name resolution fails, as on this machine) and an empty Keras cache."""
    code = (
        "import socket\n"
        "def offline(*a, **k):\n"
        "    raise socket.gaierror(-3, 'Temporary failure in name resolution')\n"
        "socket.getaddrinfo = offline\n"
        "from edgecnn.errors import EdgecnnError\n"
        "from edgecnn.train import build_model\n"
        "try:\n"
        "    build_model('mobilenetv3small', 3, (64, 64), weights='imagenet')\n"
        "except EdgecnnError as exc:\n"
        "    print('ERROR', exc)\n"
    )
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    line = next(x for x in done.stdout.splitlines() if x.startswith("ERROR"))
    assert "not in Keras' cache and could not be downloaded" in line
    assert str(tmp_path / "keras" / "models") in line and ".h5" in line
    assert "weights 'none'" in line
