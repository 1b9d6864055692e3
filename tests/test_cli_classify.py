"""`edgecnn classify` through Click's CliRunner: rows, schema, exit codes, resume, sources."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest
from click.testing import CliRunner

from edgecnn import Classifier
from edgecnn.classify.result_files import columns
from edgecnn.cli import cli
from tests.conftest import write_color_image
from tests.models import color_model, save


def run(*args: str):
    return CliRunner().invoke(cli, ["classify", *args], catch_exceptions=False)


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_to_stdout_has_the_documented_schema(color_model_path, color_folder):
    result = run(str(color_folder), "-m", str(color_model_path), "-o", "-", "-k", "2", "-q")
    assert result.exit_code == 0, result.output
    rows = rows_of(result.stdout)
    assert list(rows[0]) == columns(2)
    assert columns(2)[:6] == ["path", "status", "label", "score", "label_2", "score_2"]
    assert len(rows) == 9
    for row in rows:
        assert row["status"] == "ok" and row["error"] == ""
        assert row["label"] in os.path.basename(row["path"])
        assert float(row["score"]) >= float(row["score_2"])
        assert float(row["inference_ms"]) >= 0


def test_csv_header_is_the_golden_literal_and_jsonl_rows_carry_the_same_keys(
    color_model_path, color_folder, tmp_path
):
    """The header scripts rely on, written out; JSON lines carry exactly the CSV's keys."""
    result = run(str(color_folder), "-m", str(color_model_path), "-o", "-", "-k", "2", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "path,status,label,score,label_2,score_2,error,"
        "decode_ms,preprocess_ms,inference_ms,postprocess_ms"
    )
    out = tmp_path / "rows.jsonl"
    result = run(str(color_folder), "-m", str(color_model_path), "-o", str(out), "-k", "2", "-q")
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert len(lines) == 9
    for line in lines:
        assert list(json.loads(line)) == columns(2)


def test_bad_inputs_are_rows_and_the_run_goes_on(color_model_path, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_color_image(folder / "a_red.png", "red")
    (folder / "b_empty.jpg").write_bytes(b"")
    (folder / "c_text.jpg").write_text("hello")
    write_color_image(folder / "d blue with spaces.jpg", "blue")
    (folder / ".hidden.png").write_text("skipped")
    out = tmp_path / "out.jsonl"
    result = run(
        str(folder), str(tmp_path / "missing.png"), "-m", str(color_model_path), "-o", str(out)
    )
    assert result.exit_code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [os.path.basename(r["path"]) for r in lines] == [
        "a_red.png",
        "b_empty.jpg",
        "c_text.jpg",
        "d blue with spaces.jpg",
        "missing.png",
    ]
    assert [r["status"] for r in lines] == ["ok", "error", "error", "ok", "error"]
    assert lines[1]["error"] == "empty file (0 bytes)"
    assert "not an image" in lines[2]["error"]
    assert lines[4]["error"] == "no such file or directory"
    assert set(lines[0]) == set(columns(1))
    assert "2 ok, 3 failed" in result.stderr
    engine = Classifier.load(color_model_path).engine  # auto: CUDA where it loads, else CPU
    line = next(x for x in result.stderr.splitlines() if x.startswith("provider "))
    ran = line.partition(";")[0].removeprefix("provider ")
    # one engine: exactly it; racing candidates (auto on a CPU): the one that ran this batch
    assert ran == engine.provider or any(ran.startswith(x) for x in getattr(engine, "labels", []))


def test_terminal_table_and_exit_code_when_nothing_classifies(color_model_path, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("x")
    result = run(str(bad), "-m", str(color_model_path))
    assert result.exit_code == 1
    assert "ERROR" in result.stdout and "bad.png" in result.stdout
    assert "nothing could be classified" in result.stderr


def test_empty_folder_and_usage_errors(color_model_path, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(str(empty), "-m", str(color_model_path))
    assert result.exit_code == 1 and "empty folder" in result.stderr
    assert run("-m", str(color_model_path)).exit_code == 2  # no SOURCE
    assert run(str(empty), "--batch-size", "0").exit_code == 2
    assert run(str(empty), "--provider", "tpu").exit_code == 2
    result = run(str(empty), "-m", str(color_model_path), "--resume")
    assert result.exit_code == 2 and "--resume needs --output" in result.output


def test_unusable_models_exit_1_with_the_flags_to_fix_it(color_model_path, tmp_path):
    image = write_color_image(tmp_path / "r.png", "red")
    junk = tmp_path / "junk.onnx"
    junk.write_text("not onnx")
    result = run(str(image), "-m", str(junk))
    assert result.exit_code == 1 and "not a usable ONNX model" in result.stderr
    foreign = save(color_model(metadata=False), tmp_path / "foreign.onnx")
    result = run(str(image), "-m", str(foreign))
    assert result.exit_code == 1 and "--labels FILE --input-size HxW" in result.stderr
    labels = tmp_path / "labels.txt"
    labels.write_text("r\ng\nb\n")
    result = run(
        str(image),
        "-m",
        str(foreign),
        "--labels",
        str(labels),
        "--input-size",
        "16x16",
        "-o",
        "-",
        "-q",
    )
    assert result.exit_code == 0 and rows_of(result.stdout)[0]["label"] == "r"


def test_resume_skips_done_inputs_and_repairs_a_cut_last_line(
    color_model_path, color_folder, tmp_path
):
    out = tmp_path / "results.csv"
    first = sorted(color_folder.iterdir())[:4]
    assert run(*map(str, first), "-m", str(color_model_path), "-o", str(out)).exit_code == 0
    with open(out, "a", encoding="utf-8") as fh:  # an interrupted write: half a row
        fh.write(f"{color_folder}/05_blue.bmp,ok,bl")
    result = run(str(color_folder), "-m", str(color_model_path), "-o", str(out), "--resume")
    assert result.exit_code == 0
    assert "4 input(s) already in" in result.stderr
    paths = [row["path"] for row in rows_of(out.read_text())]
    assert sorted(paths) == sorted(str(p) for p in color_folder.iterdir())  # each exactly once
    result = run(
        str(color_folder), "-m", str(color_model_path), "-o", str(out), "--resume", "-k", "2"
    )
    assert result.exit_code == 1 and "--top-k" in result.stderr


def test_sources_globs_recursion_and_symlink_loops(color_model_path, tmp_path):
    root = tmp_path / "tree"
    (root / "sub" / "deeper").mkdir(parents=True)
    write_color_image(root / "top_red.png", "red")
    write_color_image(root / "sub" / "mid_green.png", "green")
    write_color_image(root / "sub" / "deeper" / "low_blue.png", "blue")
    os.symlink(root, root / "sub" / "deeper" / "loop")  # a folder loop
    (root / "x.png").mkdir()  # a directory with an image name
    result = run(str(root), "-m", str(color_model_path), "-o", "-")
    assert [r["path"] for r in rows_of(result.stdout)] == [str(root / "top_red.png")]
    assert "2 sub-folder(s) not read" in result.stderr
    result = run(str(root), "-r", "-m", str(color_model_path), "-o", "-")
    names = [os.path.basename(r["path"]) for r in rows_of(result.stdout)]
    assert names == ["top_red.png", "mid_green.png", "low_blue.png"]  # files, then sub-folders
    assert "symbolic-link loop" in result.stderr
    result = run(
        str(root / "sub" / "*.png"), str(root / "*.gif"), "-m", str(color_model_path), "-o", "-"
    )
    rows = rows_of(result.stdout)
    assert [r["label"] for r in rows] == ["green", ""]
    assert rows[1]["error"] == "pattern matched no files"


def test_non_utf8_file_names_round_trip_through_csv(color_model_path, tmp_path):
    folder = os.fsencode(tmp_path / "names")
    os.mkdir(folder)
    raw = os.path.join(folder, b"caf\xe9.png")
    write_color_image(os.fsdecode(raw), "green")
    out = tmp_path / "out.csv"
    assert run(os.fsdecode(folder), "-m", str(color_model_path), "-o", str(out)).exit_code == 0
    data = out.read_bytes()
    assert b"caf\xe9.png,ok,green" in data  # the exact bytes of the name, usable by scripts


@pytest.mark.parametrize("batch", ["1", "3", "64"])
def test_any_batch_size_gives_the_same_rows(color_model_path, color_folder, batch):
    result = run(
        str(color_folder), "-m", str(color_model_path), "-o", "-", "-b", batch, "--workers", "2"
    )
    labels = [r["label"] for r in rows_of(result.stdout)]
    assert labels == ["red", "green", "blue"] * 3


def test_foreign_model_flags_need_labels_and_size(color_model_path, tmp_path):
    image = write_color_image(tmp_path / "r.png", "red")
    result = run(str(image), "-m", str(color_model_path), "--fit", "pad", "--logits")
    assert result.exit_code == 2 and "--fit, --logits describe a model without" in result.output
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    result = run(
        str(image), "-m", str(color_model_path), "--labels", str(labels), "--input-size", "16x16"
    )
    assert result.exit_code == 1 and "carries its own edgecnn metadata" in result.stderr
