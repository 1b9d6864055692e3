"""``classify_dataset``: files, folders, globs or URIs (or a Ray Dataset) -> a Ray Dataset of rows.

The plan, stage by stage (nothing runs until the dataset is consumed or written):

1. list: one Ray task per source argument walks it lazily and emits chunks of paths (skipping
   what ``--resume`` found already done), so the driver never holds the list of inputs;
2. prepare: CPU tasks read each file and decode + fit it with edgecnn's one preprocessing
   function (:mod:`edgecnn.scale.image_stage`);
3. infer: an autoscaling pool of actors, each holding one model session
   (:class:`edgecnn.scale.inference_stage.ClassifyImages`), makes one row per input.

Ray Data streams blocks between the stages with bounded queues, so object-store use stays flat
however many inputs there are; a task or actor that dies is retried by Ray, and a block only
counts once its task finished, so rows are neither lost nor duplicated.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn._deps import ray_data
from edgecnn.runtime.classifier import Classifier, Foreign, default_model_path
from edgecnn.scale.image_stage import prepare_images
from edgecnn.scale.inference_stage import ClassifyImages, model_bytes
from edgecnn.scale.input_listing import is_uri, list_sources
from edgecnn.spec import ModelSpec

#: Providers that run on a GPU: their actors ask Ray for one GPU each.
GPU_PROVIDERS = ("cuda", "tensorrt")
#: Inputs per listing chunk and per prepare task.
LIST_CHUNK = 1024
PREPARE_BATCH = 64
#: Ray Data's own defaults for the inference actors, spelled out: a dead actor is restarted and
#: its batches rerun. (Spelling them out also keeps the prepare tasks a stage of their own: Ray
#: fuses a task stage into the actors only when their remote arguments are identical.)
RETRY_ACTORS = {"max_restarts": -1, "max_task_retries": -1}


@dataclass(frozen=True)
class ModelHandle:
    """What the driver knows about the model: how actors get it, its hash, and its spec."""

    source: Any  # a path / URI actors read themselves, or an ObjectRef of the bytes
    sha256: str
    spec: ModelSpec
    name: str


def parse_actors(text: str) -> tuple[int, int | None]:
    """``"4"`` -> (4, 4); ``"1:8"`` -> (1, 8); ``"2:"`` -> (2, None: as many as fit)."""
    low, sep, high = text.partition(":")
    try:
        first = int(low)
        last = (int(high) if high else None) if sep else first
    except ValueError:
        raise ValueError(f"actors {text!r}: expected N or MIN:MAX (e.g. 1:8)") from None
    if first < 1 or (last is not None and last < first):
        raise ValueError(f"actors {text!r}: need 1 <= MIN <= MAX")
    return first, last


def open_model(
    model: str | Path | bytes | None,
    *,
    provider: str = "auto",
    foreign: Foreign | None = None,
    ship: bool | None = None,
) -> ModelHandle:
    """Read the model once on the driver (hash, spec, early failure for a bad file) and decide
    how actors get it: from its path inside each actor (no copy through the driver), or as bytes
    in the object store when ``ship`` (default: for bytes, the bundled model, and Ray Client
    drivers, whose files the cluster cannot see)."""
    ray_data()
    import ray

    if model is None:
        model = default_model_path(provider)
        ship = True if ship is None else ship
    if isinstance(model, (bytes, bytearray)):
        ship, name = True, "<bytes>"
    else:
        name = os.fsdecode(model)
        if not is_uri(name):
            name = os.path.abspath(name)
    data = model_bytes(model if isinstance(model, (bytes, bytearray)) else name)
    with tempfile.TemporaryDirectory(prefix="edgecnn-model-") as folder:
        path = os.path.join(folder, "model.onnx")
        Path(path).write_bytes(data)
        spec = Classifier.load(path, provider="cpu", threads=1, foreign=foreign).spec
    if ship is None:
        ship = ray.util.client.ray.is_connected()
    source = ray.put(data) if ship else name
    return ModelHandle(source, hashlib.sha256(data).hexdigest(), spec, name)


def _pool(rd: Any, actors: tuple[int, int | None], actor_cpus: float, gpus: float) -> Any:
    """The actor pool: (min, max) actors; an open max is what the cluster holds (half its CPUs
    for CPU actors, leaving the rest to the prepare tasks; one actor per GPU for GPU engines)."""
    import ray

    low, high = actors
    if high is None:
        resources = ray.cluster_resources()
        if gpus:
            high = max(low, int(resources.get("GPU", 0) // gpus))
        else:  # leave at least half the CPUs to the prepare tasks
            high = max(low, int(resources.get("CPU", 1) // (2 * actor_cpus)))
    return rd.ActorPoolStrategy(min_size=low, max_size=high)


def classify_dataset(
    paths_or_dataset: Any,
    model: str | Path | bytes | ModelHandle | None = None,
    *,
    provider: str = "auto",
    foreign: Foreign | None = None,
    threads: int | None = None,
    top_k: int = 1,
    batch_size: int = 64,
    recursive: bool = False,
    actors: tuple[int, int | None] = (1, None),
    actor_cpus: float = 1.0,
    actor_resources: Mapping[str, float] | None = None,
    prepare_cpus: float = 1.0,
    prepare_batch: int = PREPARE_BATCH,
    ship_model: bool | None = None,
    done: Any = None,
    inference: type[ClassifyImages] = ClassifyImages,
) -> Any:
    """A lazy ``ray.data.Dataset`` of result rows (see ``result_schema``), one per input.

    ``paths_or_dataset``: a source or list of sources (files, folders, globs, URIs), or a Ray
    Dataset with a ``path`` column plus either ``bytes`` (``read_binary_files(...,
    include_paths=True)``) or nothing (each path is read). ``threads``: onnxruntime threads per
    actor (default: the actor's CPUs). ``actors``: (min, max) pool size
    (max None: what the cluster holds). ``actor_resources``: custom Ray resources each actor
    asks for, to choose where actors run (``{"edgecnn": 1}`` with nodes started with
    ``--resources '{"edgecnn": 1}'``: one actor per such node). ``done``: an ObjectRef of a set
    of paths to skip. ``inference``: the actor class (a subclass of ClassifyImages, e.g. adding
    columns).
    """
    rd = ray_data()
    handle = (
        model
        if isinstance(model, ModelHandle)
        else open_model(model, provider=provider, foreign=foreign, ship=ship_model)
    )
    if isinstance(paths_or_dataset, rd.Dataset):
        rows = paths_or_dataset
    else:
        rows = _listed_inputs(rd, paths_or_dataset, recursive, prepare_batch, done)
    prepared = rows.map_batches(
        prepare_images,
        batch_size=prepare_batch,
        num_cpus=prepare_cpus,
        fn_kwargs={"spec": handle.spec.input},
    )
    gpus = 1.0 if provider in GPU_PROVIDERS else 0.0
    settings = {"provider": provider, "threads": threads, "foreign": foreign, "top_k": top_k}
    with warnings.catch_warnings():  # Ray 2.60 nags about ray_remote_args it still documents
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        return prepared.map_batches(
            inference,
            batch_size=batch_size,
            batch_format="numpy",
            compute=_pool(rd, actors, actor_cpus, gpus),
            num_cpus=actor_cpus,
            num_gpus=gpus or None,
            resources=dict(actor_resources) if actor_resources else None,
            fn_constructor_kwargs={
                "model": handle.source,
                "model_sha256": handle.sha256,
                **settings,
            },
            **RETRY_ACTORS,
        )


def _listed_inputs(rd: Any, sources: Any, recursive: bool, prepare_batch: int, done: Any) -> Any:
    """Step 1: one listing task per source (chunks of paths, ``done`` ones skipped), cut into
    blocks of ``prepare_batch`` rows."""
    sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
    rows = rd.from_items(
        [{"source": os.fsdecode(s)} for s in sources], override_num_blocks=len(sources)
    ).map_batches(
        list_sources,
        batch_size=1,
        num_cpus=0.1,  # mostly waiting on the filesystem; different from prepare: no fusion
        fn_kwargs={
            "recursive": recursive,
            "chunk": max(LIST_CHUNK, prepare_batch),
            "done": [done] if done is not None else None,
            "root": os.getcwd(),
        },
    )
    # Ray coalesces a task's outputs into big blocks; cut them back to one prepare task each
    # (streaming: no materialisation), so decoding spreads over every CPU of the cluster.
    return rows.repartition(target_num_rows_per_block=prepare_batch)
