"""The edge side stays free of TensorFlow, and the public API is exactly what __all__ says."""

from __future__ import annotations

import subprocess
import sys

import edgecnn

PUBLIC = {
    "Classifier",
    "DatasetError",
    "EdgecnnError",
    "ExportError",
    "Foreign",
    "ImageError",
    "InputSpec",
    "MissingDependencyError",
    "ModelError",
    "ModelSpec",
    "Prediction",
    "ProviderError",
    "SourceError",
    "__version__",
    "default_model_path",
    "load_image",
}


def test_public_api_is_pinned():
    assert set(edgecnn.__all__) >= PUBLIC
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


def test_classify_command_does_not_import_tensorflow(color_model_path, color_folder):
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from edgecnn.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['classify', {str(color_folder)!r}, '-m', "
        f"{str(color_model_path)!r}, '-q'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )
    result = python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
