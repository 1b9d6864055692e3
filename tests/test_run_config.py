"""RunConfig: the typed train -> export handoff; round trip, strict reading, and one real run.

The slow test is the whole chain on tiny generated data: ``train()`` writes the run,
``export_model`` reads it through RunConfig, and ``Classifier`` runs the result; the training
cache's pixels must equal the runtime's pixels for the spec read back from the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgecnn.errors import ExportError, ModelError
from edgecnn.run_config import RunConfig, RunData, RunResult, TrainingSettings
from edgecnn.spec import InputSpec


def full_config() -> RunConfig:
    return RunConfig(
        labels=("a", "b"),
        input=InputSpec(24, 20, 1, "gray", "crop", "area"),
        output="logits",
        architecture="mnist",
        settings=TrainingSettings(
            seed=1,
            epochs=3,
            batch_size=8,
            optimizer="adam",
            learning_rate=1e-3,
            loss="sparse_categorical_crossentropy",
            lr_schedule="constant",
            patience=2,
            monitor="val_accuracy",
            augment={"flip": 1.0},
            val_split=0.2,
            test_split=0.0,
        ),
        data=RunData("/data", "flat", {"train": {"a": 3, "b": 4}}, (("x.jpg", "broken"),)),
        validation=(("v/a/1.png", 0), ("v/b/2.png", 1)),
        result=RunResult(0.9, 0.3, 2, 3, 7, 2, 0, None, 1234, 1.5),
        edgecnn_version="0.1.0",
        versions={"keras": "3"},
        created="2026-12-02T12:00:00Z",
    )


def test_round_trip_through_config_json(tmp_path: Path) -> None:
    config = full_config()
    path = config.write(tmp_path)
    assert RunConfig.read(path) == config
    data = json.loads(path.read_text())
    assert data["seed"] == 1 and data["validation_targets"] == [0, 1]  # the layout runs have
    assert config.training_summary() == {
        "val_accuracy": 0.9,
        "epochs": 3,
        "best_epoch": 2,
        "images": 7,
    }


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("input", {"height": 8, "width": 8}, "input.channels: missing"),
        ("labels", "ab", "labels: expected a list of strings"),
        ("output", "softmax", "output: 'softmax' is not one of"),
        ("epochs", 2.5, "epochs: expected an integer"),
        ("validation_targets", [0], "1 files but 2 targets|2 files but 1 targets"),
        ("validation_targets", [0, 7], "validation: item 1 is 7"),
        ("result", "x", "result: expected an object"),
        ("data", {"dir": 1}, "data.dir: expected a string"),
    ],
)
def test_a_broken_config_is_one_error_naming_the_field(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    path = full_config().write(tmp_path)
    data = json.loads(path.read_text())
    data[key] = value
    path.write_text(json.dumps(data))
    with pytest.raises(ExportError, match=message) as caught:
        RunConfig.read(path, ExportError)
    assert str(caught.value).startswith(str(path))
    path.write_text("[" * 50_000)
    with pytest.raises(ModelError, match=r"config\.json"):
        RunConfig.read(path)


@pytest.mark.slow
def test_train_export_classify_see_the_same_pixels(tmp_path: Path) -> None:
    from edgecnn import Classifier
    from edgecnn.data.shapes import generate_shapes
    from edgecnn.export import ExportOptions, export_model
    from edgecnn.train import train
    from edgecnn.train.data_cache import build_cache

    data = tmp_path / "shapes"
    generate_shapes(data, 10, (45, 37), seed=5, ratios=(0.6, 0.4))  # odd size: crop + resize
    result = train(data, "edge", tmp_path / "run", input_size=(24, 20), epochs=1, seed=0)
    # one epoch on 24 images can leave a collapsed model (export refuses it): pixels are the point
    options = ExportOptions(latency=False, force=True)
    exported = export_model(result.run_dir, tmp_path / "m.onnx", options)
    clf = Classifier.load(exported.path, provider="cpu")
    assert clf.spec.input == result.input == result.config.input
    assert clf.labels == result.labels
    assert clf.spec.training["epochs"] == result.epochs_run
    validation = result.config.validation
    assert len(validation) == exported.spec.verification["images"] == 16
    cache = build_cache([(Path(p), t) for p, t in validation], result.config.input)
    runtime = np.stack([clf.prepare(p) for p, _ in validation])
    assert cache.images.shape == runtime.shape == (16, 24, 20, 3)
    assert np.array_equal(cache.images, runtime)
