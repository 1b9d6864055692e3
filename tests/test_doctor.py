"""`edgecnn doctor` reports what this machine really has."""

from __future__ import annotations

import json

from click.testing import CliRunner

from edgecnn import Classifier
from edgecnn.cli import cli
from edgecnn.runtime.providers import CUDA


def doctor(*args: str, env: dict | None = None):
    return CliRunner(env=env).invoke(cli, ["doctor", *args])


def test_doctor_says_cuda_exactly_when_a_session_really_runs_on_cuda(color_model_path):
    result = doctor("--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    really = Classifier.load(color_model_path, provider="auto").provider == CUDA
    assert data["cuda_loads"] == really
    assert "CPUExecutionProvider" in data["providers_available"]
    assert data["cpu"]["cores"] >= 1


def test_doctor_reports_no_window_without_a_display():
    result = doctor(env={"DISPLAY": None, "WAYLAND_DISPLAY": None})
    assert result.exit_code == 0, result.output
    assert "window: no (no display" in result.output
    assert "int8: " in result.output and "CUDA: " in result.output
