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


_CLICK_SPY = """
import builtins, importlib, pathlib, sys
real_import = builtins.__import__
culprits = set()

def spy(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    wanted = name.split(".")[0] == "click" or name.startswith("edgecnn.cli")
    if wanted and importer.startswith("edgecnn") and not importer.startswith("edgecnn.cli"):
        culprits.add(f"{importer} imports {name}")
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = spy
import edgecnn
root = pathlib.Path(edgecnn.__file__).parent
names = [".".join(("edgecnn",) + p.relative_to(root).with_suffix("").parts)
         for p in sorted(root.rglob("*.py"))
         if "cli" not in p.relative_to(root).parts and p.name != "__main__.py"]
for name in names:
    importlib.import_module(name.removesuffix(".__init__"))
print(sorted(culprits))
print(len(names), "click" in sys.modules)
"""


def test_library_modules_do_not_import_click():
    """Only edgecnn.cli may use Click: the API, serve and scale write to streams / callables.
    Every library module is imported in a fresh interpreter that records each `import click`
    (or of edgecnn.cli) made by an edgecnn module. Click may still end up in sys.modules:
    httpx and uvicorn import it for their own command lines."""
    result = python(_CLICK_SPY)
    assert result.returncode == 0, result.stderr
    culprits, counts = result.stdout.splitlines()[-2:]
    assert int(counts.split()[0]) > 50, result.stdout  # every library module was imported
    assert culprits == "[]"
