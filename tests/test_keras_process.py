"""The export's TensorFlow child process: how its end and its stderr reach the caller.

(The child itself runs in every export test: tests/test_export.py.)
"""

from __future__ import annotations

import signal

import pytest

from edgecnn.export import keras_process


def test_a_killed_child_is_named_with_its_signal() -> None:
    killed = "was killed by signal 9 SIGKILL (out of memory?)"
    assert keras_process._ended(-signal.SIGKILL) == killed
    assert keras_process._ended(-signal.SIGTERM) == "was killed by signal 15 SIGTERM"
    assert keras_process._ended(3) == "failed (exit code 3)"


@pytest.mark.parametrize(("level", "shown"), [("3", False), ("0", True)])
def test_startup_banners_are_passed_on_only_when_tensorflow_is_not_quiet(
    level: str, shown: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
    banner = (
        "I0000 00:00:1796225304.756245   12813 cudart_stub.cc:31] Could not find cuda drivers "
        "on your machine, GPU will not be used."
    )
    keras_process._pass_on(f"{banner}\n\nValueError: a real error\n")
    err = capsys.readouterr().err
    assert "ValueError: a real error" in err
    assert ("cudart_stub" in err) is shown
