"""The models a server holds: loaded once each, named, and timed.

``edgecnn serve a.onnx plant=models/plant-int8.onnx`` serves ``a`` (the file's stem) and
``plant``; without models it serves the bundled default. The first model is the default one
(``POST /v1/classify``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgecnn.errors import ModelError
from edgecnn.runtime.classifier import Classifier, default_model_path

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class LoadedModel:
    """One model ready to serve: its URL name, the classifier and how long loading took."""

    name: str
    classifier: Classifier
    load_seconds: float


def parse_entry(entry: str) -> tuple[str | None, str]:
    """``NAME=PATH`` -> (NAME, PATH); a bare path -> (None, PATH)."""
    name, sep, path = entry.partition("=")
    if sep and name and not os.path.exists(entry):
        return name, path
    return None, entry


def model_name(path: str | Path) -> str:
    """The default URL name of a model file: its stem (``shapes-int8.onnx`` -> shapes-int8)."""
    return Path(os.fsdecode(path)).stem


def load_models(
    entries: Sequence[str], provider: str = "auto", threads: int | None = None
) -> list[LoadedModel]:
    """Load every model once (the bundled default when ``entries`` is empty), checking names."""
    default = [(None, os.fsdecode(default_model_path(provider)))]
    wanted = [parse_entry(e) for e in entries] or default
    loaded: list[LoadedModel] = []
    for name, path in wanted:
        name = name or model_name(path)
        if not _NAME.match(name):
            raise ModelError(
                f"{path}: model name {name!r} is not URL-safe; name it with NAME=PATH "
                "(letters, digits, '_', '.', '-')"
            )
        if any(m.name == name for m in loaded):
            raise ModelError(f"{path}: a model named {name!r} is already served; use NAME=PATH")
        started = time.perf_counter()
        # decode threads share the cores with inference: its idle threads must not spin
        classifier = Classifier.load(path, provider=provider, threads=threads, spinning=False)
        loaded.append(LoadedModel(name, classifier, time.perf_counter() - started))
    return loaded
