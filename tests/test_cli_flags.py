"""Library messages name API parameters; the CLI shows the running verb's flags instead."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecnn.cli import cli
from edgecnn.cli.export import export
from edgecnn.cli.flags import cli_message
from edgecnn.errors import ExportError


def test_parameters_become_the_verbs_flags() -> None:
    message = (
        "pass `labels_file` and `input_size`; `verify` images; `format`; "
        "`no_reduce_range`; `not_an_option` stays"
    )
    assert cli_message(message, export) == (
        "pass --labels and --input-size; --verify images; `format`; "
        "--no-reduce-range; `not_an_option` stays"
    )
    assert cli_message(message, None) == message  # from Python: parameter names


def test_export_engine_precision_is_checked_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--engine-precision needs OpenVINO: without it export says which extra, before it even
    looks at the model (a missing file here); a precision that is not reduced is refused."""
    from edgecnn.export import ExportOptions, export_model

    missing = str(tmp_path / "missing.keras")
    with pytest.raises(ExportError, match="bf16 or f16"):
        export_model(missing, tmp_path / "x.onnx", ExportOptions(engine_precision="f32"))
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if the extra were not installed
    result = CliRunner().invoke(
        cli, ["export", missing, "-o", str(tmp_path / "x.onnx"), "--engine-precision", "bf16"]
    )
    assert result.exit_code == 1
    assert "pip install 'edgecnn[openvino]'" in result.output, result.output
    assert not (tmp_path / "x.onnx").exists()
