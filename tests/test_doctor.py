"""`edgecnn doctor` reports what this machine really has."""

from __future__ import annotations

import json

import onnxruntime as ort
from click.testing import CliRunner

from edgecnn.cli import cli
from edgecnn.providers import cuda_status


def test_doctor_json_matches_the_machine():
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["providers_available"] == ort.get_available_providers()
    assert data["cuda_loads"] == cuda_status().loadable
    assert data["cpu"]["cores"] >= 1
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        assert data["cpu"]["flags"]["avx2"] == (" avx2" in fh.read())


def test_doctor_text_names_providers_and_window_state():
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0
    assert "CPUExecutionProvider" in result.output
    assert "window:" in result.output and "CUDA:" in result.output
