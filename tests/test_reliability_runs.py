"""Issue 10, items 3-10 and 12: classify runs that used to lose, duplicate or corrupt results,
report bad numbers as results, write formulas into CSV cells, change process-wide state or print
raw escape sequences. Real onnxruntime sessions on tiny generated models, real files."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from edgecnn import Classifier
from edgecnn.classify.result_files import columns
from edgecnn.cli import cli
from tests.bounded import last_json, run_python
from tests.conftest import write_color_image
from tests.models import IR_VERSION, color_model, save


def classify(*args: str):
    return CliRunner().invoke(cli, ["classify", *args])


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        return list(csv.DictReader(fh))


def _model(tmp_path: Path, name: str, tail: list, out_shape: list, metadata: bool = True) -> Path:
    """The colour model's mean-colour scores, then ``tail`` nodes producing ``probabilities``."""
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", 16, 16, 3])
    probs = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, out_shape)
    nodes = [
        helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x", "axes"], ["scores"], keepdims=0),
        *tail,
    ]
    inits = [
        numpy_helper.from_array(np.array([1, 2], np.int64), "axes"),
        numpy_helper.from_array(np.array([0, 1, 2], np.int64), "all_axes"),
        numpy_helper.from_array(np.array(np.nan, np.float32), "nan"),
    ]
    graph = helper.make_graph(nodes, name, [image], [probs], inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=IR_VERSION
    )
    if metadata:
        template = color_model()
        helper.set_model_props(model, {p.key: p.value for p in template.metadata_props})
    return save(model, tmp_path / f"{name}.onnx")


# --------------------------------------------------------------------------- 3 and 4: resume
def test_resume_leaves_a_file_that_is_not_edgecnns_untouched(tmp_path, color_model_path):
    png = tmp_path / "picture.png"
    write_color_image(png, "red", (64, 64))
    user_csv = tmp_path / "important.csv"
    user_csv.write_text("name,amount\nalice,10\nbob,20")  # no newline at the end
    user_jsonl = tmp_path / "important.jsonl"
    user_jsonl.write_text('{"id": 1}\n{"id": 2')
    png_as_csv = tmp_path / "photo.csv"
    png_as_csv.write_bytes(png.read_bytes())
    for target in (user_csv, user_jsonl, png_as_csv):
        before = target.read_bytes()
        result = classify(str(png), "-m", str(color_model_path), "-o", str(target), "--resume")
        assert result.exit_code == 1 and "left unchanged" in result.output, result.output
        assert result.output.count("\n") == 1  # one line, no traceback
        assert target.read_bytes() == before


def test_resume_matches_normalized_paths_and_cuts_a_quoted_multiline_row_whole(
    tmp_path, color_model_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(6):
        write_color_image(folder / f"{i}.png", ["red", "green", "blue"][i % 3])
    write_color_image(folder / "line\nbreak.png", "red")
    out = tmp_path / "out.csv"
    model = ["-m", str(color_model_path), "-o", str(out), "--resume", "-q"]
    assert classify("many", *model).exit_code == 0
    with open(out, "a", encoding="utf-8", newline="") as fh:  # a run killed mid-row
        fh.write('"many/line\nbreak.png",ok,re')
    for spelling in ("./many", str(folder), "many/"):
        result = classify(spelling, *model)
        assert result.exit_code == 0, result.output
    rows = csv_rows(out)
    assert len(rows) == 7 and all(row["status"] == "ok" for row in rows)
    assert sorted(os.path.basename(r["path"]) for r in rows) == sorted(os.listdir(folder))


# --------------------------------------------------------------------------- 5: writers
def test_a_second_writer_is_refused_and_an_input_is_never_the_output(tmp_path, color_folder):
    model = save(color_model(), tmp_path / "m.onnx")
    out = tmp_path / "same.csv"
    out.write_text("kept\n")
    with open(out, "rb") as held:  # another run holds the output
        fcntl.flock(held, fcntl.LOCK_EX)
        result = classify(str(color_folder), "-m", str(model), "-o", str(out))
    assert result.exit_code == 1 and "another edgecnn run is writing" in result.output
    assert out.read_text() == "kept\n"
    victim = color_folder / "01_green.png"
    before = victim.read_bytes()
    result = classify(str(color_folder), "-m", str(model), "-o", str(victim), "--format", "csv")
    assert result.exit_code == 1 and "is one of the inputs" in result.output
    assert victim.read_bytes() == before


# --------------------------------------------------------------------------- 6: process state
def test_the_library_leaves_warnings_filters_and_opencv_threads_alone(tmp_path, color_model_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        write_color_image(folder / f"{i:02d}.png", "red")
    clf = Classifier.load(color_model_path, provider="cpu")
    filters, threads = list(warnings.filters), cv2.getNumThreads()
    seen = set()
    for _ in range(3):
        for prediction in clf.classify(folder, workers=2, batch_size=4):
            assert prediction.ok
            seen.add(cv2.getNumThreads())
    assert seen == {threads} and cv2.getNumThreads() == threads
    assert list(warnings.filters) == filters


# --------------------------------------------------------------------------- 7: memory
def _short_jpeg(path: Path, side: int) -> Path:
    """A valid small JPEG whose header is patched to declare ``side`` x ``side`` pixels."""
    data = bytearray(cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = side.to_bytes(2, "big") * 2
    path.write_bytes(bytes(data))
    return path


def test_a_jpeg_far_shorter_than_its_size_is_truncated_and_the_pixel_limit_is_an_option(
    tmp_path, color_model_path
):
    bomb = _short_jpeg(tmp_path / "bomb.jpg", 12200)
    small = write_color_image(tmp_path / "small.png", "red", (40, 60))
    out = tmp_path / "r.jsonl"
    args = [str(bomb), str(small), "-m", str(color_model_path), "-o", str(out)]
    assert classify(*args).exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert "truncated JPEG" in rows[0]["error"] and "12200x12200" in rows[0]["error"]
    assert rows[1]["status"] == "ok"
    assert classify(*args, "--max-pixels", "1000").exit_code == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert "60x40" in rows[1]["error"] and "over 1,000" in rows[1]["error"]


def _peak_growth(folder: Path, model: Path, data: bytes) -> dict:
    """Four copies of ``data`` classified in a child with four workers and a 75 MB decode
    budget: the growth of the child's peak RSS (VmHWM: its own since exec, where ru_maxrss
    also counts the forking parent's) over a warm-up run of four small images through the
    same pipeline (threads, onnxruntime batch of 4)."""
    names = [str(folder / f"big{i}") for i in range(4)]
    for name in names:
        Path(name).write_bytes(data)
    small = write_color_image(folder / "small.png", "red")
    result = run_python(f"""
        import json
        from edgecnn import Classifier
        from edgecnn.classify.input_discovery import scan
        from edgecnn.runtime.batch_pipeline import Pipeline
        clf = Classifier.load({str(model)!r}, provider="cpu")
        pipe = Pipeline(clf, workers=4, batch_size=4, decode_budget=75 * 10**6)
        def peak():
            status = open("/proc/self/status").read().splitlines()
            return 1024 * int(next(s.split()[1] for s in status if s.startswith("VmHWM:")))
        list(pipe.run(scan([{str(small)!r}] * 4).items))
        base = peak()
        ok = [p.ok for p in pipe.run(scan({names!r}).items)]
        print(json.dumps({{"ok": ok, "growth": peak() - base}}))
    """)
    return last_json(result)


def test_a_large_png_is_decoded_once_and_one_at_a_time(tmp_path, color_model_path):
    """Four PNGs of ~70 kB that decode to 69 MB each: one at a time under the budget, and
    decoded in place (OpenCV's imdecode + its binding's copy peaked at twice the image), so
    the peak grows by about one image, not two (one image in two copies) or four."""
    data = cv2.imencode(".png", np.zeros((4800, 4800, 3), np.uint8))[1].tobytes()
    found = _peak_growth(tmp_path, color_model_path, data)
    assert found["ok"] == [True] * 4
    assert 0.8 * 69.1e6 < found["growth"] < 1.25 * 69.1e6, found  # two copies: +138 MB


def test_a_progressive_jpegs_coefficients_count_against_the_budget(tmp_path, color_model_path):
    """A progressive 4800x4800 JPEG decoded at 1/8 scale gives 1 MB of pixels, but libjpeg
    holds the whole image's DCT coefficients (69 MB) while decoding: the budget counts them,
    so four such files decode one at a time (they used to decode four at once, +280 MB), and
    what libjpeg freed in one worker's heap goes back to the system (it stayed: +98..120 MB)."""
    image = np.zeros((4800, 4800, 3), np.uint8)
    image[::50] = 255
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", progressive=True)
    found = _peak_growth(tmp_path, color_model_path, buf.getvalue())
    assert found["ok"] == [True] * 4
    assert 0.8 * 69.1e6 < found["growth"] < 1.25 * 69.1e6, found


# --------------------------------------------------------------------------- 8 and 9: numbers
def test_nan_outputs_are_error_rows_and_jsonl_stays_json(tmp_path, color_folder):
    nan = _model(
        tmp_path,
        "nan",
        [helper.make_node("Mul", ["scores", "nan"], ["probabilities"])],
        ["N", 3],
    )
    out = tmp_path / "r.jsonl"
    result = classify(str(color_folder), "-m", str(nan), "-o", str(out))
    assert result.exit_code == 1 and "nothing could be classified" in result.output
    strict = {"parse_constant": lambda name: pytest.fail(f"bare {name} in JSON lines")}
    rows = [json.loads(line, **strict) for line in out.read_text().splitlines()]
    assert len(rows) == 9 and all("NaN or infinity" in row["error"] for row in rows)


def test_foreign_outputs_must_be_probabilities_unless_logits(tmp_path, color_folder):
    raw = _model(tmp_path, "raw", [helper.make_node("Identity", ["scores"], ["probabilities"])],
                 ["N", 3], metadata=False)  # fmt: skip
    labels = tmp_path / "labels.txt"
    labels.write_text("red\ngreen\nblue\n")
    foreign = ["-m", str(raw), "--labels", str(labels), "--input-size", "16x16", "-o", "-"]
    foreign += ["--provider", "cpu"]
    result = classify(str(color_folder), *foreign)
    assert result.exit_code == 1 and "not probabilities" in result.output
    table = classify(str(color_folder), *[a for a in foreign if a not in ("-o", "-")])
    for output, row in ((result.output, ",error,,,"), (table.output, "ERROR ")):  # CSV, table
        rows = [line for line in output.splitlines() if row in line]
        assert len(rows) == 9 and all("run it with --logits" in line for line in rows), output
        assert "`" not in output  # the API parameter's name, `logits`, is the CLI's flag
    result = classify(str(color_folder), *foreign, "--logits")
    assert result.exit_code == 0 and result.output.count(",ok,") == 9
    for flags, words in [(["--mean", "1,2"], "--mean has 2 values"), (["--std", "0"], "non-zero")]:
        result = classify(str(color_folder), *foreign, *flags)
        assert result.exit_code == 1 and words in result.output, result.output
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1


def test_a_model_ignoring_the_batch_dimension_is_one_line(tmp_path, color_folder):
    fixed = _model(
        tmp_path,
        "fixed",
        [helper.make_node("ReduceMean", ["x", "all_axes"], ["probabilities"], keepdims=1)],
        [1, 1, 1, 3],
    )
    result = classify(str(color_folder), "-m", str(fixed), "-b", "4", "-o", "-")
    assert result.exit_code == 1 and "ignores the batch dimension" in result.output
    assert "Traceback" not in result.output


def test_output_errors_keep_the_rows_written_and_say_so(tmp_path, color_folder, color_model_path):
    if os.path.exists("/dev/full"):
        result = classify(str(color_folder), "-m", str(color_model_path), "-o", "/dev/full",
                          "--format", "csv")  # fmt: skip
        assert result.exit_code == 1 and "No space left on device" in result.output
        assert result.output.count("\n") == 1, result.output
    out = tmp_path / "out.csv"
    # A disk that fills mid-run: the file may not grow past 700 bytes (RLIMIT_FSIZE)
    code = (
        "import resource, signal, sys; from edgecnn.cli import cli\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (700, 700))\n"
        f"cli.main(['classify', {str(color_folder)!r}, '-m', {str(color_model_path)!r},"
        f" '-o', {str(out)!r}, '-b', '1'])\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert child.returncode == 1, child.stderr
    assert "stopped:" in child.stderr and "File too large" in child.stderr
    assert "row(s) written stay" in child.stderr and "Traceback" not in child.stderr
    rows = csv_rows(out)
    assert 0 < len(rows) < 9 and all(len(row) == len(columns(1)) for row in rows)
    assert all(row["status"] == "ok" and row["postprocess_ms"] for row in rows)
    assert out.read_bytes().endswith(b"\r\n")


# --------------------------------------------------------------------------- 10: what people read
def test_csv_cells_never_run_as_formulas_and_jsonl_stays_exact(tmp_path):
    labels = ('=HYPERLINK("http://x","y")', "+red", "\x1b]0;pwned\x07blue")
    model = save(color_model(labels=labels), tmp_path / "m.onnx")
    image = write_color_image(tmp_path / "@evil.png", "red")
    out_csv, out_jsonl = tmp_path / "r.csv", tmp_path / "r.jsonl"
    for out in (out_csv, out_jsonl):
        result = classify(str(image), "-m", str(model), "-o", str(out), "-k", "3")
        assert result.exit_code == 0, result.output
    row = csv_rows(out_csv)[0]
    assert row["label"] == '\'=HYPERLINK("http://x","y")'
    assert row["label_2"] in ("'+red", labels[2]) and row["path"].endswith("@evil.png")
    assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values() if v)
    record = json.loads(out_jsonl.read_text())
    assert record["label"] == labels[0] and record["path"] == str(image)
    # resume reads the protected cells back exactly
    result = classify(str(image), "-m", str(model), "-o", str(out_csv), "-k", "3", "--resume")
    assert result.exit_code == 0 and "1 input(s) already in" in result.output
    # the terminal shows escape sequences escaped: table, summary, info
    table = classify(str(image), "-m", str(model), "-k", "3")
    info = CliRunner().invoke(cli, ["info", str(model)])
    for output in (table.output, info.output):
        assert "\x1b" not in output and "\\x1b]0;pwned\\x07blue" in output


# --------------------------------------------------------------------------- 12: SIGTERM
def test_sigterm_ends_classify_like_ctrl_c(tmp_path, color_model_path):
    folder = tmp_path / "many"
    folder.mkdir()
    first = write_color_image(folder / "0000.png", "red", (480, 640))
    for i in range(1, 3000):
        os.link(first, folder / f"{i:04d}.png")
    out = tmp_path / "out.csv"
    command = [sys.executable, "-m", "edgecnn", "classify", str(folder), "-m",
               str(color_model_path), "-o", str(out), "-b", "1", "--workers", "1"]  # fmt: skip
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        while not out.exists() or out.read_text().count("\n") < 20:
            assert child.poll() is None, "finished before the signal"
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 143, stderr
    assert "terminated (SIGTERM) after" in stderr and "images/s" in stderr
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == columns(1) and 19 <= len(rows) - 1 < 3000
    assert all(len(row) == len(columns(1)) and row[1] == "ok" for row in rows[1:])
