"""The edge side stays free of TensorFlow, and the public API is exactly what __all__ says."""

from __future__ import annotations

import subprocess
import sys

import pytest

import edgecnn

PUBLIC = {
    "Classifier",
    "DatasetError",
    "EdgecnnError",
    "ExportError",
    "Foreign",
    "FrameResult",
    "ImageError",
    "InputSpec",
    "MissingDependencyError",
    "ModelError",
    "ModelSpec",
    "Prediction",
    "ProviderError",
    "SourceError",
    "Stream",
    "__version__",
    "default_model_path",
    "load_image",
}


def test_public_api_is_pinned():
    assert set(edgecnn.__all__) == PUBLIC
    for name in edgecnn.__all__:
        assert hasattr(edgecnn, name), name


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_import_edgecnn_does_not_import_tensorflow():
    result = python(
        "import sys, edgecnn; print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx')))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "verb",
    [
        ["classify", "{folder}", "-m", "{model}", "-q"],
        ["live", "-s", "{folder}", "-m", "{model}", "--no-show", "-q"],
        ["info", "{model}"],
        ["doctor"],
        ["--help"],
    ],
    ids=["classify", "live", "info", "doctor", "help"],
)
def test_edge_commands_do_not_import_tensorflow_or_ray(verb, color_model_path, color_folder):
    args = [a.format(folder=color_folder, model=color_model_path) for a in verb]
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from edgecnn.cli import cli\n"
        f"r = CliRunner().invoke(cli, {args!r})\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = ('tensorflow', 'keras', 'ray', 'pyarrow')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = python(code)
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_help_does_not_load_the_runtime():
    """`edgecnn --help` and the training verbs should not pay for onnxruntime / OpenCV."""
    result = python(
        "import sys; from edgecnn.cli import cli; "
        "print('onnxruntime' in sys.modules, 'cv2' in sys.modules)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
