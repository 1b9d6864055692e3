"""The edge side stays free of TensorFlow, and the public API is exactly what __all__ says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgecnn
from tests.conftest import write_color_image

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


#: Never imported on the edge side (nor by the data / train modules before training starts).
TRAINING = ("tensorflow", "keras", "tf2onnx")
#: Also never imported by the edge verbs (the cluster runner's stack).
EDGE = (*TRAINING, "ray", "pyarrow")

#: One subprocess per case: (modules imported, CLI arguments run in-process, modules forbidden).
NO_TENSORFLOW = {
    "import-edgecnn": ("edgecnn", None, TRAINING),
    "data-and-train-modules": (
        "edgecnn.data.datasets, edgecnn.data.dataset_splits, edgecnn.data.dataset_inspection, "
        "edgecnn.data.split_on_disk, edgecnn.data.shapes, edgecnn.cli.dataset, edgecnn.cli.train, "
        "edgecnn.train, edgecnn.train.train_settings",
        None,
        (*TRAINING, "matplotlib"),
    ),
    "serve-stack": (
        "edgecnn.serve.app, edgecnn.serve.server, edgecnn.client, edgecnn.tools.server_bench, "
        "edgecnn.cli.serve",
        None,
        TRAINING,
    ),
    "classify": ("", ["classify", "{folder}", "-m", "{model}", "-q"], EDGE),
    "live-folder": ("", ["live", "-s", "{folder}", "-m", "{model}", "--no-show", "-q"], EDGE),
    "live-video": ("", ["live", "-s", "{video}", "-m", "{model}", "--no-show", "-q"], EDGE),
    "bench": (
        "",
        ["bench", "{model}", "--iterations", "1", "-q", "--batch-sizes", "1", "--threads", "1"],
        EDGE,
    ),
    "eval-onnx": ("", ["eval", "{model}", "{labelled}"], EDGE),
    "info": ("", ["info", "{model}"], EDGE),
    "doctor": ("", ["doctor"], EDGE),
    "help": ("", ["--help"], EDGE),
}


def _inputs(tmp_path: Path, folder: Path) -> dict[str, str]:
    """A 3-frame video and a labelled folder (class sub-folders) beside the image folder."""
    video = tmp_path / "rgb.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (32, 24))
    for value in (0, 128, 255):
        writer.write(np.full((24, 32, 3), value, np.uint8))
    writer.release()
    labelled = tmp_path / "labelled"
    for color in ("red", "green", "blue"):
        (labelled / color).mkdir(parents=True)
        write_color_image(labelled / color / "0.png", color)
    return {"folder": str(folder), "video": str(video), "labelled": str(labelled)}


@pytest.mark.parametrize("case", list(NO_TENSORFLOW))
def test_no_tensorflow_is_imported(case, color_model_path, color_folder, tmp_path):
    """``import edgecnn``, the data / train / serve modules and every edge verb run in a fresh
    interpreter and load none of the heavy stacks (the verb must also succeed)."""
    modules, verb, forbidden = NO_TENSORFLOW[case]
    lines = ["import sys"] + ([f"import {modules}"] if modules else [])
    if verb is not None:
        names = {**_inputs(tmp_path, color_folder), "model": str(color_model_path)}
        args = [a.format(**names) for a in verb]
        lines += [
            "from click.testing import CliRunner",
            "from edgecnn.cli import cli",
            f"r = CliRunner().invoke(cli, {args!r})",
            "assert r.exit_code == 0, r.output",
        ]
    lines.append(f"print(sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r}))")
    result = python("\n".join(lines))
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
