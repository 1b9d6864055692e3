"""Issue 10, items 1, 2 and 13: special files a user names (FIFOs, links to /dev/zero, binary
labels, zip bombs) never hang a run, never fill a disk or the memory, and never give a
traceback. Each case runs in a child process bounded in time and memory (tests/bounded.py)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from tests.bounded import last_json, run_python
from tests.conftest import write_color_image

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")

# Runs CLI verbs in one child (one interpreter start for all cases): exit code + output each.
_CLI_HARNESS = """
import json, sys
from click.testing import CliRunner
from edgecnn.cli import cli
cases = json.loads(sys.argv[1]) if len(sys.argv) > 1 else CASES
out = {}
for name, args in cases.items():
    r = CliRunner().invoke(cli, args)
    out[name] = [r.exit_code, r.output[-2000:], type(r.exception).__name__]
print(json.dumps(out))
"""


def run_cli(cases: dict[str, list[str]]) -> dict[str, list]:
    import json

    return last_json(run_python(f"CASES = {json.dumps(cases)}\n" + _CLI_HARNESS))


def _special_folder(folder: Path) -> Path:
    """Two good images, a FIFO named like an image and a link to /dev/zero named like one."""
    folder.mkdir(parents=True)
    write_color_image(folder / "a_red.png", "red")
    write_color_image(folder / "b_blue.jpg", "blue")
    os.mkfifo(folder / "c_fifo.png")
    os.symlink("/dev/zero", folder / "d_zero.jpg")
    return folder


def test_dataset_split_copies_only_regular_files_and_lists_the_rest(tmp_path):
    src = tmp_path / "src"
    for label in ("red", "blue"):
        _special_folder(src / label)
    result = run_cli(
        {
            "split": ["dataset", "split", str(src), str(tmp_path / "dst"), "--ratios", "0.5,0.5"],
            "inspect": ["dataset", "inspect", str(src)],
        }
    )
    code, output, _ = result["split"]
    assert code == 0, output
    assert output.count("skipped:") == 4 and "pipe (FIFO)" in output and "device" in output
    copied = [p for p in (tmp_path / "dst").rglob("*") if p.is_file() or p.is_symlink()]
    assert len(copied) == 4 and all(p.is_file() and p.stat().st_size < 10_000 for p in copied)
    code, output, _ = result["inspect"]
    assert code == 0, output
    assert "unreadable: 4 file(s)" in output and "pipe (FIFO)" in output


def test_fifos_and_dev_zero_named_anywhere_are_one_line_errors(tmp_path, color_model_path):
    images = _special_folder(tmp_path / "images")
    fifo = tmp_path / "labels.fifo"
    os.mkfifo(fifo)
    binary = tmp_path / "labels.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    zero = tmp_path / "labels.txt"
    os.symlink("/dev/zero", zero)
    model_fifo = tmp_path / "model.onnx"
    os.mkfifo(model_fifo)
    keras_fifo = tmp_path / "model.keras"
    os.mkfifo(keras_fifo)
    foreign = ["--input-size", "16x16", "-m", str(color_model_path)]
    result = run_cli(
        {
            "classify": ["classify", str(images), "-m", str(color_model_path), "-o", "-"],
            "labels_fifo": ["classify", str(images), "--labels", str(fifo), *foreign],
            "labels_zero": ["classify", str(images), "--labels", str(zero), *foreign],
            "labels_binary": ["classify", str(images), "--labels", str(binary), *foreign],
            "model_fifo": ["classify", str(images), "-m", str(model_fifo)],
            "bench": ["bench", str(color_model_path), "--images", str(images),
                      "--iterations", "1", "--warmup", "0", "--batch-sizes", "1", "--threads", "1"],
        }
    )  # fmt: skip
    code, output, _ = result["classify"]
    assert code == 0, output
    assert 'c_fifo.png,error,,,"is a pipe (FIFO), not a regular file"' in output
    assert 'd_zero.jpg,error,,,"is a device, not a regular file"' in output
    for name, cause in [
        ("labels_fifo", "pipe (FIFO)"),
        ("labels_zero", "is a device"),
        ("labels_binary", "binary file"),
        ("model_fifo", "pipe (FIFO)"),
    ]:
        code, output, kind = result[name]
        assert code == 1 and kind == "SystemExit", (name, output)
        assert output.startswith("Error: ") and cause in output, (name, output)
        assert "Traceback" not in output and output.count("\n") == 1, (name, output)
    code, output, _ = result["bench"]
    assert code == 0, output
    said = " ".join(output.split())  # the report wraps long lines
    assert "not decodable, failed in every end-to-end run: 2 input(s)" in said, output
    assert "c_fifo.png: is a pipe (FIFO)" in said and "(and 1 more)" in said, output
    keras = run_python(f"""
        import json
        from edgecnn.errors import ExportError
        from edgecnn.export.keras_model import load_keras
        try:
            load_keras({str(keras_fifo)!r})
        except ExportError as exc:
            print(json.dumps(str(exc)))
    """)
    assert "pipe (FIFO)" in last_json(keras)


def _bomb(path: Path, member: str, size: int) -> Path:
    """A tiny .keras zip whose directory says ``member`` expands to ``size`` bytes (as a
    deflated run of zeros would: the check reads only the directory, so no need to write it)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, b"\0" * 64)
    data = bytearray(path.read_bytes())
    for magic, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(magic) + offset
        data[at : at + 4] = size.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


def test_keras_archives_that_expand_too_far_are_refused_before_loading(tmp_path):
    from edgecnn.errors import ExportError
    from edgecnn.export.keras_model import KERAS_MAX_JSON, check_archive

    config = _bomb(tmp_path / "config.keras", "config.json", KERAS_MAX_JSON + (1 << 20))
    weights = _bomb(tmp_path / "weights.keras", "model.weights.h5", 1100 << 20)
    assert config.stat().st_size < 1000 and weights.stat().st_size < 1000
    for path, words in [(config, "config.json expands to"), (weights, "archive expands to")]:
        with open(path, "rb") as fh, pytest.raises(ExportError, match=words):
            check_archive(fh, path)
