"""What a new user hits in the first hour (issue 15): messages, hints and reports that say
what happened. Real models, real files, real subprocesses; nothing timed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecnn.cli import cli
from edgecnn.errors import ModelError
from edgecnn.runtime.classifier import Classifier
from edgecnn.tools import bench_report
from edgecnn.tools.bench_settings import Settings
from edgecnn.tools.metrics import confusion_lines
from edgecnn.tools.model_bench import Benchmark
from edgecnn.tools.pipeline_limit import verdict

FAST = {"iterations": 2, "warmup": 0}


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, list(args))


def keras_file(path: Path) -> Path:
    """A file in Keras 3's ``.keras`` layout (a zip of metadata.json, config.json and the
    weights' HDF5 file): what `edgecnn train` writes, without importing TensorFlow here."""
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", '{"keras_version": "3.15.0"}')
        zf.writestr("config.json", '{"class_name": "Sequential", "config": {}}')
        zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(64))
    return path


# ----------------------------------------------------------------------------- the wrong kind


def test_keras_model_where_onnx_is_expected(tmp_path: Path) -> None:
    model = keras_file(tmp_path / "model.keras")
    for args in (
        ["classify", "samples/images", "--model", str(model)],
        ["info", str(model)],
        ["bench", str(model), "--iterations", "1"],
    ):
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "this is a Keras model" in result.output, result.output
        assert f"edgecnn export {model}" in result.output and "PROTOBUF" not in result.output
    with pytest.raises(ModelError, match="this is a Keras model"):
        Classifier.load(model)
    run = tmp_path / "run"
    run.mkdir()
    keras_file(run / "model.keras")
    result = invoke("classify", "samples/images", "--model", str(run))
    assert result.exit_code == 1 and "training run folder" in result.output, result.output
    assert f"edgecnn export {run}" in result.output


def test_export_of_an_onnx_file_says_already_onnx(color_model_path: Path, tmp_path: Path) -> None:
    result = invoke("export", str(color_model_path), "-o", str(tmp_path / "out.onnx"))
    assert result.exit_code == 1
    assert "already an ONNX model" in result.output and "labels" not in result.output


def test_info_on_a_model_without_metadata_shows_what_it_can(tmp_path: Path) -> None:
    import onnx

    from tests.models import color_model

    model = color_model()
    del model.metadata_props[:]
    path = tmp_path / "foreign.onnx"
    onnx.save(model, path)
    result = invoke("info", str(path))
    assert result.exit_code == 0, result.output
    assert "image tensor(uint8)" in result.output and "probabilities tensor(float)" in result.output
    assert f"opset {model.opset_import[0].version}" in " ".join(result.output.split())
    assert "--labels FILE --input-size HxW" in result.output
    data = json.loads(invoke("info", str(path), "--json").output)
    assert data["edgecnn"] is None and data["opsets"]["ai.onnx"] == model.opset_import[0].version
    assert data["ir_version"] == model.ir_version and data["bytes"] == path.stat().st_size


# ----------------------------------------------------------------------------- bench output


def test_pipeline_above_its_limit_is_reported_as_disturbed() -> None:
    row = {"cpu_share": {"decode": 0.7, "preprocess": 0.1, "inference": 0.2, "postprocess": 0.0}}
    line = verdict({**row, "fraction_of_limit": 1.36, "others_cpu_share": 0.4})
    assert "136%" in line and "disturbed" in line and "40%" in line
    assert "try other" not in line and "machine's limit" not in line
    loaded = verdict({**row, "fraction_of_limit": 0.5, "one_core_others_cpu_share": 0.6})
    assert "disturbed" in loaded and "try other" not in loaded
    quiet = verdict({**row, "fraction_of_limit": 0.5, "others_cpu_share": 0.01})
    assert "try other" in quiet and "disturbed" not in quiet


def test_terminal_report_fits_100_columns(color_model_path: Path, color_folder: Path) -> None:
    settings = Settings(batch_sizes=(1, 2), threads=(1, None), **FAST)
    report = Benchmark([str(color_model_path)], settings, images=str(color_folder)).run()
    text = bench_report.terminal(report)
    assert max(len(line) for line in text.splitlines()) <= 100, text
    assert "vs first" not in text  # one model: nothing to compare with
    assert "p50 ms" in text and "img/s" in text
    markdown = bench_report.markdown(report)
    assert "p90 ms" in markdown and "mean ms" in markdown  # every column stays in Markdown


def test_plot_legend_says_one_thread() -> None:
    assert bench_report._threads("1") == "1 thread"
    assert bench_report._threads("auto") == "auto threads"


# ----------------------------------------------------------------------------- plotting extra

_NO_MATPLOTLIB = "import sys; sys.modules['matplotlib'] = None\nfrom edgecnn.cli import main\n"


@pytest.mark.parametrize("verb", ["bench", "eval"])
def test_plot_without_matplotlib_fails_before_measuring_and_names_the_plot_extra(
    verb: str, color_model_path: Path, color_folder: Path, tmp_path: Path
) -> None:
    """A runtime-only install (matplotlib not importable): the hint names the light `plot`
    extra, not TensorFlow's, and comes before any measuring (no table printed)."""
    png = tmp_path / "out.png"
    if verb == "bench":
        args = ["bench", str(color_model_path), "--iterations", "1", "--plot", str(png)]
    else:
        args = ["eval", str(color_model_path), str(color_folder), "--png", str(png)]
    code = _NO_MATPLOTLIB + f"main({args!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert "pip install 'edgecnn[plot]'" in done.stderr and "[train]" not in done.stderr
    assert done.stdout == ""  # nothing measured, nothing printed
    assert not png.exists()


def test_plot_extra_is_declared() -> None:
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert 'plot = ["matplotlib' in text


# ----------------------------------------------------------------------------- small ones


def test_confusion_matrix_headers_are_never_cut() -> None:
    labels = ["circle", "square", "star", "triangle"]
    lines = confusion_lines(labels, [[1, 0, 0, 0]] * 4, width=9)
    assert all(label in lines[1] for label in labels)
    long = [f"Apple___Cedar_apple_rust_{i}" for i in range(8)]
    lines = confusion_lines(long, [[0] * 8] * 8, width=30)
    assert all(len(line) <= 100 for line in lines)
    assert all(any(label in line for line in lines) for label in long)


# ----------------------------------------------------------------------------- datasets


def test_shapes_into_a_split_dataset_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    from edgecnn.data.datasets import discover

    dst = tmp_path / "shapes"
    args = ["dataset", "shapes", str(dst), "--per-class", "4", "--size", "16"]
    assert invoke(*args, "--ratios", "0.5,0.5").exit_code == 0
    before = sorted(p.relative_to(dst) for p in dst.rglob("*"))
    result = invoke(*args, "--seed", "1")  # flat, into the split dataset
    assert result.exit_code == 1
    assert "already a split dataset (train/, validation/)" in result.output
    assert sorted(p.relative_to(dst) for p in dst.rglob("*")) == before
    assert discover(dst).layout == "split"  # still readable by inspect and train
    result = invoke(*args[:2], str(dst / "train"), *args[3:], "--ratios", "0.5,0.5")
    assert result.exit_code == 1 and "already holds class folders" in result.output
    result = invoke("dataset", "split", str(dst / "validation"), str(dst / "train"))
    assert result.exit_code == 1 and "already holds class folders" in result.output


# ----------------------------------------------------------------------------- live sources


def _free_port() -> int:
    import socket

    with socket.socket() as probe:  # a port nobody listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_refused_stream_is_reported_as_refused_not_as_a_timeout(color_model_path: Path) -> None:
    from edgecnn.errors import SourceError
    from edgecnn.live.frame_sources import open_source

    port = _free_port()
    with pytest.raises(SourceError, match=rf"connection refused by 127\.0\.0\.1:{port}") as info:
        open_source(f"rtsp://127.0.0.1:{port}/cam")
    assert "within" not in str(info.value)
    with pytest.raises(SourceError, match=r"host no-such-camera\.invalid not found"):
        open_source("rtsp://no-such-camera.invalid/cam")


def test_reconnect_waits_for_a_stream_that_is_not_up_yet(color_model_path: Path) -> None:
    """The camera boots after the edge box: with reconnect, the first open is retried."""
    import threading

    import numpy as np

    from edgecnn.live.browser_preview import Preview
    from edgecnn.live.stream import Stream
    from tests.conftest import BGR

    classifier = Classifier.load(color_model_path, provider="cpu", threads=1)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/stream.mjpg"
    red = np.empty((120, 160, 3), np.uint8)
    red[:] = BGR["red"]
    notes: list[str] = []
    stop = threading.Event()
    servers: list[Preview] = []

    def camera_boots() -> None:
        while not any("retrying" in n for n in notes) and not stop.wait(0.05):
            pass
        servers.append(Preview("127.0.0.1", port).start())
        while not stop.wait(1 / 30):
            servers[0].publish(red.copy(), {})

    booting = threading.Thread(target=camera_boots, daemon=True)
    booting.start()
    try:
        with Stream(classifier, url, reconnect=True, notify=notes.append) as stream:
            labels = []
            for result in stream:
                labels.append(result.label)
                if len(labels) == 3:
                    break
    finally:
        stop.set()
        booting.join(5)
        for server in servers:
            server.close()
    assert labels == ["red"] * 3
    assert "connection refused" in notes[0] and any(n.endswith(": opened") for n in notes)
    with pytest.raises(Exception, match="connection refused"):  # without reconnect: an error
        Stream(classifier, url).__enter__()


# ----------------------------------------------------------------------------- quiet start


def test_native_start_up_noise_is_filtered_and_real_errors_kept() -> None:
    code = (
        "import os\nfrom edgecnn.cli.quiet import native_stderr_filtered\n"
        "for verbose in (False, True):\n"
        "    with native_stderr_filtered(verbose):\n"
        "        os.write(2, b'I0000 00:00:1 port.cc:153] oneDNN custom operations are on.\\n')\n"
        "        os.write(2, b'real error: disk full\\n')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("oneDNN") == 1  # only the verbose round shows it
    assert done.stderr.count("real error: disk full") == 2


@pytest.mark.slow
def test_tensorflow_imports_without_banners_in_the_cli_process() -> None:
    code = (
        "from edgecnn.cli.quiet import quiet_imports\n"
        "quiet_imports(verbose=False)\nimport tensorflow\nprint(tensorflow.__version__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()  # TensorFlow really imported
    assert "oneDNN" not in done.stderr and "absl::InitializeLog" not in done.stderr, done.stderr


# ----------------------------------------------------------------------------- small ones (8)


def test_resume_without_output_is_a_usage_error_before_the_model_loads(tmp_path: Path) -> None:
    result = invoke("classify", str(tmp_path), "--resume", "--model", str(tmp_path / "no.onnx"))
    assert result.exit_code == 2 and "--resume needs --output FILE" in result.output
    assert "no such model file" not in result.output


def test_a_run_where_nothing_succeeded_reports_no_speed(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_text("not an image")
    result = CliRunner().invoke(cli, ["classify", str(tmp_path)])
    assert result.exit_code == 1
    assert "0 ok, 1 failed" in result.stderr and "images/s" not in result.stderr


def test_misspelt_verb_gets_a_suggestion() -> None:
    result = invoke("clasify", "photos/")
    assert result.exit_code == 2 and "Did you mean 'classify'?" in result.output
    assert "Did you mean" not in invoke("frobnicate").output


def test_dir_of_the_package_is_its_public_api() -> None:
    import edgecnn

    names = set(dir(edgecnn))
    assert not names & {"Any", "TYPE_CHECKING", "annotations", "importlib"}
    assert names == set(edgecnn.__all__)


def test_history_plot_ticks_are_whole_epochs() -> None:
    pytest.importorskip("matplotlib")
    from edgecnn.tools.plots import integer_ticks

    assert all(float(t).is_integer() for t in integer_ticks().tick_values(1, 3))


def test_live_prints_a_line_per_second_unless_asked_and_an_honest_header(tmp_path: Path) -> None:
    from tests.conftest import write_color_image

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(6):
        write_color_image(frames / f"{i}.png", "red")
    model = tmp_path / "color.onnx"
    from tests.models import color_model, save

    save(color_model(), model)
    args = ["live", "-m", str(model), "-s", str(frames), "--no-show", "--every", "2"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "(1 frame in 2)" in result.stderr and "every frame" not in result.stderr
    counts = [int(n) for n in re.findall(r"(\d+) frames?: red", result.stdout)]
    assert sum(counts) == 3 and len(result.stdout.splitlines()) == len(counts)
    assert "\\n" not in result.stderr  # the summary's lines are lines
    per_event = CliRunner().invoke(cli, [*args, "--console", "event"])
    assert len(per_event.stdout.splitlines()) == 3 and "red 1.000" in per_event.stdout


def test_verbose_after_the_verb_says_where_it_goes() -> None:
    result = invoke("info", "-v")
    assert result.exit_code == 2 and "edgecnn -v VERB" in result.output
    assert invoke("-v", "info").exit_code == 0
