"""The one output-path check (:func:`edgecnn.user_files.check_output_path`) and its callers:
classify's result files, live's video / JSON-lines outputs and the exported model all refuse a
bad path with the same one-line message, before any work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgecnn.classify.result_files import ResultWriter
from edgecnn.errors import EdgecnnError, ExportError
from edgecnn.export.artifact import check_destination
from edgecnn.live.frame_outputs import check_paths
from edgecnn.user_files import check_output_path


def test_missing_folder_and_folder_are_refused_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "out.csv"
    expected = re.escape(f"{missing}: the folder {missing.parent} does not exist")
    with pytest.raises(EdgecnnError, match="^" + expected):
        check_output_path(missing)
    with pytest.raises(EdgecnnError, match=r"^`jsonl` .*: is a folder; give a file name$"):
        check_output_path(tmp_path, "`jsonl`")


def test_writable_paths_and_stdout_pass(tmp_path: Path) -> None:
    check_output_path(tmp_path / "new.csv")
    (tmp_path / "old.csv").write_text("x")
    check_output_path(tmp_path / "old.csv", replaced=True)
    check_output_path("-", stdout=True)
    with pytest.raises(EdgecnnError, match="does not exist"):  # "-" is a file unless stdout
        check_output_path(str(tmp_path / "missing" / "-"))


@pytest.mark.parametrize(
    ("call", "kind", "prefix"),
    [
        (lambda p: ResultWriter(str(p), "csv", 1), EdgecnnError, ""),
        (lambda p: check_destination(p), ExportError, ""),
        (lambda p: check_paths(save=str(p)), EdgecnnError, "`save` "),
        (lambda p: check_paths(jsonl=str(p)), EdgecnnError, "`jsonl` "),
    ],
    ids=["classify-results", "export-model", "live-save", "live-jsonl"],
)
def test_every_writer_uses_the_one_check(tmp_path: Path, call, kind, prefix: str) -> None:
    folder = tmp_path / "missing"
    target = folder / ("out.mp4" if "save" in prefix else "out.csv")
    with pytest.raises(kind) as missing:
        call(target)
    assert str(missing.value) == (
        f"{prefix}{target}: the folder {folder} does not exist (create it first)"
    )
    assert not folder.exists()
    name = tmp_path / ("dir.mp4" if "save" in prefix else "dir.csv")
    name.mkdir()
    with pytest.raises(kind, match=r": is a folder; give a file name"):
        call(name)
