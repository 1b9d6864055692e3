"""A quiet start for the ``edgecnn`` process: the banners third-party native libraries print
(TensorFlow / absl / oneDNN / CUDA stubs at import, Qt font warnings when a window opens,
OpenCV and FFmpeg warnings about a stream that will not open) are hidden unless ``-v``.

CLI layer only: this changes the environment and file descriptor 2 of the ``edgecnn`` process,
never of an application that imports edgecnn as a library.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from edgecnn._deps import pass_on_stderr

#: Environment for the CLI process (set only where the user has not set them).
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ INFO / WARNING after start-up
    "QT_LOGGING_RULES": "*.debug=false;qt.*.warning=false;default.warning=false",  # font dirs
    "OPENCV_LOG_LEVEL": "ERROR",  # "[ WARN:0@0.2] global cap.cpp ... can't be used to capture"
    "OPENCV_FFMPEG_LOGLEVEL": "-8",  # FFmpeg's own "[tcp @ 0x..] Connection refused"
}


def quiet_environment(verbose: bool) -> None:
    """Set :data:`QUIET_ENV` for this process unless ``verbose`` (user settings win)."""
    if verbose:
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def native_stderr_filtered(verbose: bool) -> Iterator[None]:
    """Capture file descriptor 2 (where C++ libraries write) while the block runs, then write
    back every line that is not known start-up noise, so real errors still show."""
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            pass_on_stderr(capture.read().decode("utf-8", "replace"))


#: Packages whose import prints native start-up banners (TensorFlow loads its libraries twice).
NOISY_PACKAGES = ("tensorflow", "keras", "tf2onnx")


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds :data:`NOISY_PACKAGES` like the normal path finder, but runs their top-level
    import with file descriptor 2 filtered (:func:`native_stderr_filtered`)."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in NOISY_PACKAGES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        with native_stderr_filtered(False):
            self.loader.exec_module(module)


def quiet_imports(verbose: bool) -> None:
    """In the CLI process, unless ``verbose``: TensorFlow, Keras and tf2onnx import without
    their start-up banners, whichever verb imports them and whenever (once per process)."""
    if verbose or any(isinstance(f, _QuietImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietImport())


def is_verbose() -> bool:
    """The group's ``-v`` flag, from inside any verb."""
    import click

    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("verbose"))
