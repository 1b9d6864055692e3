"""The inference stage of a distributed run: a callable class for Ray Data's actor pools.

Each actor opens the model once (from a path or URI read inside the actor, or from bytes the
driver put in the object store), with onnxruntime intra-op threads = the CPUs Ray gave the actor
(onnxruntime would otherwise size its pool to the whole host in every actor). It turns batches
of prepared images into result rows with exactly local ``classify``'s columns
(:func:`edgecnn.classify.result_files.columns` / :func:`~edgecnn.classify.result_files.record`)
plus ``model_sha256``, ``node`` and ``provider`` (what the actor's engine really runs, e.g.
``CPUExecutionProvider``: the requested ``auto`` / ``cuda`` may resolve differently per node).

Usable on its own in a user's pipeline::

    ds = ray.data.read_binary_files("s3://bucket/photos", include_paths=True)
    rows = ds.map_batches(ClassifyImages, fn_constructor_kwargs={"model": "model.onnx"},
                          concurrency=4, batch_size=64)
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from edgecnn.classify.result_files import columns, record
from edgecnn.errors import ModelError, with_names
from edgecnn.runtime.classifier import Classifier, Foreign
from edgecnn.scale.image_stage import load_bytes_row
from edgecnn.scale.input_listing import is_uri, read_uri_bytes

#: Columns a distributed run adds to local classify's: which model, where the row was made, and
#: what ran it there (:attr:`Classifier.provider`, not the provider that was asked for).
EXTRA_COLUMNS = ("model_sha256", "node", "provider")


def result_schema(top_k: int) -> Any:
    """The Arrow schema of result rows: local classify's columns (strings and float64 scores /
    milliseconds, null when empty) followed by :data:`EXTRA_COLUMNS`."""
    import pyarrow as pa

    fields = []
    for name in columns(top_k):
        numeric = name.startswith("score") or name.endswith("_ms")
        fields.append((name, pa.float64() if numeric else pa.string()))
    fields += [(name, pa.string()) for name in EXTRA_COLUMNS]
    return pa.schema(fields)


def model_bytes(model: str | bytes | Any) -> bytes:
    """The model file's bytes from a local path, a pyarrow URI, bytes, or an ObjectRef of bytes."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    if not isinstance(model, (str, os.PathLike)):  # an ObjectRef from ray.put
        import ray

        return bytes(ray.get(model))
    name = os.fsdecode(model)
    if is_uri(name):
        try:
            return read_uri_bytes(name)
        except Exception as exc:
            raise ModelError(f"{name}: cannot read the model ({exc})") from None
    try:
        with open(name, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ModelError(f"{name}: cannot read the model ({exc.strerror or exc})") from None


def _actor_cpus() -> int:
    cpus = 1.0  # not inside Ray: one thread, like one CPU
    with contextlib.suppress(Exception):
        import ray

        if ray.is_initialized():  # asking the runtime context outside Ray would start Ray
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    return max(1, math.ceil(cpus))


def _node() -> str:
    with contextlib.suppress(Exception):
        import ray

        if ray.is_initialized():  # asking the runtime context outside Ray would start Ray
            return ray.get_runtime_context().get_node_id()
    return ""


class ClassifyImages:
    """Ray Data callable class: batches of prepared images (or encoded ``bytes``) -> result rows.

    ``model``: a local path (must exist on every node), a URI (``s3://.../model.onnx``), bytes,
    or an ObjectRef of bytes. ``model_sha256``: when given, an actor whose copy of the model
    differs refuses to start (a stale file on one node). ``threads``: intra-op threads (default:
    the CPUs Ray assigned to this actor). ``names``: how the rows' errors name the API
    parameters they mention (the CLI passes its flags, so a row says ``--logits`` as local
    classify's do; default: `` `logits` ``).
    """

    def __init__(
        self,
        model: Any,
        *,
        provider: str = "auto",
        threads: int | None = None,
        foreign: Foreign | None = None,
        top_k: int = 1,
        model_sha256: str | None = None,
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.names = dict(names or {})
        data = model_bytes(model)
        digest = hashlib.sha256(data).hexdigest()
        if model_sha256 is not None and digest != model_sha256:
            raise ModelError(
                f"the model on node {_node()} has sha256 {digest[:12]}..., not the "
                f"{model_sha256[:12]}... the run was started with (a stale copy?)"
            )
        path = os.fsdecode(model) if isinstance(model, (str, os.PathLike)) else ""
        if not path or is_uri(path):
            # Engines open files, some lazily (per batch size): a private copy for the actor's
            # lifetime, removed with the actor.
            self._folder = tempfile.TemporaryDirectory(prefix="edgecnn-model-")
            path = os.path.join(self._folder.name, "model.onnx")
            with open(path, "wb") as fh:
                fh.write(data)
        del data
        self.classifier = Classifier.load(
            path, provider=provider, threads=threads or _actor_cpus(), foreign=foreign
        )
        self.top_k = max(1, min(top_k, self.classifier.spec.num_classes))
        self.sha256 = digest
        self.node = _node()
        self.provider = self.classifier.provider
        self.schema = result_schema(self.top_k)

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        """Classify one batch; returns an Arrow table with :func:`result_schema`'s columns."""
        import pyarrow as pa

        spec = self.classifier.spec.input
        paths = [str(p) for p in batch["path"]]
        if "image" in batch:
            images = batch["image"]
            errors = batch["error"] if "error" in batch else [""] * len(paths)
            prepared = [None if errors[i] else images[i] for i in range(len(paths))]
            error_list = [str(e) if e else None for e in errors]
            timings = [_stage_ms(batch, i) for i in range(len(paths))]
        else:  # encoded bytes straight from ray.data.read_binary_files
            data = batch["bytes"]
            loaded = [load_bytes_row(p, b, spec) for p, b in zip(paths, data, strict=True)]
            prepared = [x.array for x in loaded]
            error_list = [x.error for x in loaded]
            timings = [x.timings for x in loaded]
        predictions = self.classifier.finish_batch(paths, prepared, error_list, timings, self.top_k)
        if self.names:
            predictions = [
                replace(p, error=with_names(p.error, self.names)) if p.error else p
                for p in predictions
            ]
        rows = [record(p, self.top_k) for p in predictions]
        table = {name: [row[name] for row in rows] for name in columns(self.top_k)}
        table["model_sha256"] = [self.sha256] * len(rows)
        table["node"] = [self.node] * len(rows)
        table["provider"] = [self.provider] * len(rows)
        return pa.table(table, schema=self.schema)


def _stage_ms(batch: dict[str, np.ndarray], i: int) -> dict[str, float]:
    timings = {}
    for stage in ("decode", "preprocess"):
        column = batch.get(f"{stage}_ms")
        if column is not None and not math.isnan(column[i]):
            timings[stage] = float(column[i])
    return timings
