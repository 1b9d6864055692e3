"""Classifier on real onnxruntime sessions: inputs of every kind, providers, foreign models,
thread safety, and the model-side failures."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgecnn import Classifier, Foreign, ImageError, ModelError, ProviderError, SourceError
from edgecnn.runtime.providers import CUDA, NO_GPU, cuda_status
from tests.conftest import BGR, write_color_image
from tests.models import COLOR_LABELS, IR_VERSION, color_model, save


def test_predict_accepts_path_str_bytes_and_arrays(color_model_path, tmp_path):
    clf = Classifier.load(color_model_path, provider="cpu")
    path = write_color_image(tmp_path / "r.png", "red")
    bgr = np.full((20, 30, 3), BGR["blue"], np.uint8)
    assert clf.predict(path).label == "red"
    assert clf.predict(str(path)).label == "red"
    assert clf.predict(path.read_bytes()).label == "red"
    assert clf.predict(bgr).label == "blue"  # OpenCV order by default
    assert clf.predict(bgr, color_order="rgb").label == "red"  # same bytes read as RGB
    result = clf.predict(path, top_k=3)
    assert result.top[0][0] == "red"
    assert sorted(label for label, _ in result.top) == sorted(COLOR_LABELS)
    assert abs(sum(score for _, score in result.top) - 1.0) < 1e-5
    assert set(result.timings) == {"decode", "preprocess", "inference", "postprocess"}


def test_predict_raises_and_batch_reports_bad_images(color_model_path, tmp_path):
    clf = Classifier.load(color_model_path, provider="cpu")
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    with pytest.raises(ImageError, match=r"bad\.jpg: cannot decode"):
        clf.predict(bad)
    good = write_color_image(tmp_path / "g.jpg", "green")
    results = clf.predict_batch([good, bad, good])
    assert [r.ok for r in results] == [True, False, True]
    assert results[0].label == results[2].label == "green"
    assert "cannot decode" in results[1].error


def test_spec_and_provider_are_what_runs(color_model_path):
    clf = Classifier.load(color_model_path)
    assert clf.labels == COLOR_LABELS
    assert clf.spec.input.shape == (16, 16, 3)
    status = cuda_status()
    if not status.loadable:
        assert "CPUExecutionProvider" in clf.provider  # alone, or racing OpenVINO under auto
        if status.reason == NO_GPU:
            assert clf.provider_note is None  # nothing to fix: no note on every command
        else:
            assert "CUDA" in clf.provider_note  # a GPU is there: auto says why it is unused


def test_cuda_either_runs_on_cuda_or_fails_loudly(color_model_path):
    if cuda_status().loadable:
        assert Classifier.load(color_model_path, provider="cuda").provider == CUDA
    else:
        with pytest.raises(ProviderError, match=r"cuda: .*(no NVIDIA GPU|edgecnn\[cuda\])"):
            Classifier.load(color_model_path, provider="cuda")


def test_shared_classifier_is_thread_safe(color_model_path, tmp_path):
    clf = Classifier.load(color_model_path, provider="cpu", threads=1)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (24, 24, 3), np.uint8) for _ in range(64)]
    expected = [clf.predict(image, top_k=3).top for image in images]
    barrier = threading.Barrier(8)

    def work(offset: int) -> list:
        barrier.wait()
        order = list(range(offset, 64)) + list(range(offset))
        return [(i, clf.predict(images[i], top_k=3).top) for i in order]

    with ThreadPoolExecutor(8) as pool:
        for rows in pool.map(work, range(0, 64, 8)):
            for i, top in rows:
                assert top == expected[i]


def test_classify_yields_one_result_per_input_in_order(color_model_path, color_folder):
    clf = Classifier.load(color_model_path, provider="cpu")
    results = list(clf.classify(color_folder, batch_size=4, workers=2))
    names = sorted(os.listdir(color_folder))
    assert [os.path.basename(r.source) for r in results] == names
    assert all(
        r.ok and r.label == name.split("_")[1].split(".")[0]
        for r, name in zip(results, names, strict=True)
    )


def test_a_file_that_vanishes_or_turns_unreadable_mid_run(color_model_path, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for i in range(40):
        write_color_image(folder / f"{i:03d}.png", "red")
    clf = Classifier.load(color_model_path, provider="cpu")
    stream = clf.classify(folder, batch_size=1, workers=1)
    first = next(stream)  # the folder was listed; now break two files the run has not reached
    os.remove(folder / "039.png")
    os.remove(folder / "038.png")
    os.mkfifo(folder / "038.png")
    rest = list(stream)
    assert first.ok and len(rest) == 39
    assert "vanished" in rest[-1].error or "no such file" in rest[-1].error
    assert "not a regular file" in rest[-2].error
    assert all(r.ok for r in rest[:-2])


# ---------------------------------------------------------------- model side
def test_not_onnx_and_missing_model(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match=r"junk\.onnx: not a usable ONNX model"):
        Classifier.load(junk)
    with pytest.raises(ModelError, match="no such model file"):
        Classifier.load(tmp_path / "nope.onnx")


def test_model_without_metadata_is_refused_naming_the_flags(tmp_path):
    path = save(color_model(metadata=False), tmp_path / "foreign.onnx")
    with pytest.raises(ModelError, match=r"no edgecnn metadata.*`labels` FILE `input_size` HxW"):
        Classifier.load(path)
    clf = Classifier.load(path, foreign=Foreign(labels=("r", "g", "b"), input_size=(16, 16)))
    assert clf.predict(np.full((8, 8, 3), BGR["green"], np.uint8)).label == "g"


def test_labels_that_do_not_match_the_output(tmp_path):
    path = save(color_model(spec_overrides={"labels": ["a", "b"]}), tmp_path / "m.onnx")
    with pytest.raises(
        ModelError, match="output 'probabilities' has 3 classes but the model has 2 labels"
    ):
        Classifier.load(path)


def test_fixed_batch_model_runs_any_batch(tmp_path):
    path = save(color_model(batch=1), tmp_path / "b1.onnx")
    clf = Classifier.load(path, provider="cpu")
    images = [np.full((16, 16, 3), BGR[c], np.uint8) for c in ("red", "green", "blue", "red")]
    assert [r.label for r in clf.predict_batch(images)] == ["red", "green", "blue", "red"]


def test_foreign_float_nchw_model_with_normalization(tmp_path):
    """A PyTorch-style model: float NCHW input normalised by the runtime from the flags."""
    image = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 16, 16])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    nodes = [helper.make_node("ReduceMean", ["input", "axes"], ["logits"], keepdims=0)]
    axes = onnx.numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    graph = helper.make_graph(nodes, "nchw", [image], [out], [axes])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=IR_VERSION
    )
    path = save(model, tmp_path / "nchw.onnx")
    labels = ("r", "g", "b")
    with pytest.raises(ModelError, match="`scale`"):
        Classifier.load(path, foreign=Foreign(labels=labels, input_size=(16, 16)))
    clf = Classifier.load(
        path, foreign=Foreign(labels=labels, input_size=(16, 16), scale=1 / 255, logits=True)
    )
    result = clf.predict(np.full((16, 16, 3), BGR["blue"], np.uint8), top_k=3)
    assert result.label == "b"
    assert abs(sum(s for _, s in result.top) - 1) < 1e-5  # softmax applied to logits


def test_run_rejects_wrong_tensors(color_model_path):
    clf = Classifier.load(color_model_path, provider="cpu")
    with pytest.raises(ValueError, match="uint8"):
        clf.run(np.zeros((1, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        clf.run(np.zeros((1, 8, 8, 3), np.uint8))
    probs = clf.run(np.zeros((5, 16, 16, 3), np.uint8))
    assert probs.shape == (5, 3) and np.allclose(probs.sum(axis=1), 1)


def test_video_frame_from_opencv_round_trip(color_model_path, tmp_path):
    """Frames as cv2.VideoCapture hands them over (BGR) classify like files."""
    video = str(tmp_path / "v.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for color in ("red", "green", "blue"):
        writer.write(np.full((24, 32, 3), BGR[color], np.uint8))
    writer.release()
    capture = cv2.VideoCapture(video)
    clf = Classifier.load(color_model_path, provider="cpu")
    labels = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        labels.append(clf.predict(frame).label)
    assert labels == ["red", "green", "blue"]


def test_foreign_flags_on_a_model_with_metadata_are_refused(color_model_path):
    with pytest.raises(ModelError, match="carries its own edgecnn metadata"):
        Classifier.load(
            color_model_path, foreign=Foreign(labels=("a", "b", "c"), input_size=(16, 16))
        )


def test_classify_api_says_when_nothing_is_found_and_warns_about_subfolders(
    color_model_path, tmp_path
):
    clf = Classifier.load(color_model_path, provider="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.warns(UserWarning, match="empty folder"), pytest.raises(SourceError, match="no"):
        list(clf.classify(tmp_path / "empty"))
    (tmp_path / "top" / "sub").mkdir(parents=True)
    write_color_image(tmp_path / "top" / "a.png", "red")
    with pytest.warns(UserWarning, match="sub-folder"):
        assert [r.label for r in clf.classify(tmp_path / "top")] == ["red"]


def test_predict_batch_and_classify_agree_on_odd_inputs(color_model_path, tmp_path):
    clf = Classifier.load(color_model_path, provider="cpu")
    odd = [np.zeros((4, 4, 2), np.uint8), b"", tmp_path / "missing.png"]
    results = clf.predict_batch(odd)
    assert [r.ok for r in results] == [False, False, False]
    assert "image array" in results[0].error and "empty" in results[1].error
    assert "no such file" in results[2].error
    with pytest.raises(ValueError, match="color_order"):
        clf.predict_batch(odd, color_order="bgra")
