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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn._deps import ray_data
from edgecnn.runtime.classifier import Classifier, Foreign, default_model_path
from edgecnn.scale.image_stage import prepare_images
from edgecnn.scale.inference_stage import ClassifyImages, model_bytes
from edgecnn.scale.input_listing import is_uri, list_sources, sample_sizes
from edgecnn.spec import ModelSpec

#: Providers that run on a GPU: their actors ask Ray for one GPU each.
GPU_PROVIDERS = ("cuda", "tensorrt")
#: Inputs per listing chunk; per inference call. Decode tasks get ~PREPARE_BYTES of encoded
#: files each (16 to PREPARE_BATCH inputs, guessed from the first files' sizes): big blocks
#: because each costs Ray ~50-100 ms on a busy 2-core node (task, Arrow, object store, a
#: Parquet file), which dominated small images (20,000 at 64 per block: 0.19x local; at 1024:
#: 0.81x); but a few hundred multi-megapixel photos need small ones, or one or two decode tasks
#: get them all (300 photos at 1024 per task: 0.47x; at 16: 0.62x).
LIST_CHUNK = 1024
INFER_BATCH = 512
PREPARE_BATCH = 1024
PREPARE_BYTES = 32 * 2**20
#: Logical CPUs per prepare task. Ray Data reserves each stage a share of the CPUs plus a slice
#: of the rest; with 1-CPU tasks a 2-CPU node ran one decode task at a time beside an actor that
#: mostly waited (large photos: 0.44x local). A quarter CPU lets decoding use the idle CPU
#: (Ray Data ran up to 3 decode tasks there) while its reservations keep the object store
#: bounded.
PREPARE_CPUS = 0.25
#: Threads per decode task for files of at least THREADED_BYTES (guessed as the prepare batch
#: is): Ray starts worker processes lazily (~1.5 s each on a busy 2-core node) and Ray Data
#: ramps decode tasks up one at a time, so for photos a single task decoded alone for the first
#: seconds after the actors were ready; OpenCV releases the GIL, so a second thread uses the
#: idle core (300 photos: ~42 -> ~47 images/s, the same CPU time). Small files stay on one
#: thread: there the per-row Python work dominates and threads cost ~50% more CPU (20,000 small
#: images: 1910 -> 1680 images/s).
PREPARE_THREADS = 2
THREADED_BYTES = 256 * 2**10
#: Remote arguments of the prepare tasks beyond their CPUs. Ray fuses a task stage into the
#: actor stage after it when their remote arguments are equal (e.g. ``prepare_cpus ==
#: actor_cpus``), which would decode inside the actors instead of beside them; ``max_calls=0``
#: is Ray's default for CPU tasks (a worker runs any number of them) and a named argument the
#: actors never get, so the stages stay apart. (A dead actor is restarted and its batches rerun:
#: Ray Data's defaults for actor pools, ``max_restarts=-1``, ``max_task_retries=-1``.)
SEPARATE_STAGE = {"max_calls": 0}


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


def given_settings(**settings: Any) -> dict[str, Any]:
    """The :func:`classify_dataset` settings that were given (None: not given, left out so its
    defaults apply): how the CLI and the scale benchmark pass their optional flags."""
    return {name: value for name, value in settings.items() if value is not None}


def classify_dataset(
    paths_or_dataset: Any,
    model: str | Path | bytes | ModelHandle | None = None,
    *,
    provider: str = "auto",
    foreign: Foreign | None = None,
    threads: int | None = None,
    top_k: int = 1,
    batch_size: int = INFER_BATCH,
    recursive: bool = False,
    actors: tuple[int, int | None] = (1, None),
    actor_cpus: float = 1.0,
    actor_resources: Mapping[str, float] | None = None,
    prepare_cpus: float = PREPARE_CPUS,
    prepare_batch: int | None = None,
    prepare_threads: int | None = None,
    ship_model: bool | None = None,
    done: Any = None,
    inference: type[ClassifyImages] = ClassifyImages,
    names: Mapping[str, str] | None = None,
) -> Any:
    """A lazy ``ray.data.Dataset`` of result rows (see ``result_schema``), one per input.

    ``paths_or_dataset``: a source or list of sources (files, folders, globs, URIs), or a Ray
    Dataset with a ``path`` column plus either ``bytes`` (``read_binary_files(...,
    include_paths=True)``) or nothing (each path is read). ``threads``: onnxruntime threads per
    actor (default: the actor's CPUs). ``actors``: (min, max) pool size
    (max None: what the cluster holds). ``actor_resources``: custom Ray resources each actor
    asks for, to choose where actors run (``{"edgecnn": 1}`` with nodes started with
    ``--resources '{"edgecnn": 1}'``: one actor per such node). ``done``: an ObjectRef of a set
    of paths to skip. ``prepare_batch``: inputs per decode task (default:
    :func:`guess_prepare_batch`); ``prepare_threads``: threads per decode task (default:
    :data:`PREPARE_THREADS` for files of :data:`THREADED_BYTES` or more, else 1).
    ``inference``: the actor class (a subclass of ClassifyImages, e.g. adding columns).
    ``names``: how the rows' errors name the API parameters they mention (see ClassifyImages).
    """
    rd = ray_data()
    handle = (
        model
        if isinstance(model, ModelHandle)
        else open_model(model, provider=provider, foreign=foreign, ship=ship_model)
    )
    if isinstance(paths_or_dataset, rd.Dataset):
        rows, prepare_batch = paths_or_dataset, prepare_batch or PREPARE_BATCH
    else:
        rows, prepare_batch = _listed_inputs(rd, paths_or_dataset, recursive, prepare_batch, done)
    prepare_threads = prepare_threads or default_prepare_threads(prepare_batch)
    prepared = rows.map_batches(
        prepare_images,
        batch_size=prepare_batch,
        num_cpus=prepare_cpus,
        fn_kwargs={"spec": handle.spec.input, "threads": prepare_threads},
        **SEPARATE_STAGE,
    )
    gpus = 1.0 if provider in GPU_PROVIDERS else 0.0
    settings = {"provider": provider, "threads": threads, "foreign": foreign, "top_k": top_k}
    if names:
        settings["names"] = dict(names)
    return prepared.map_batches(
        inference,
        batch_size=batch_size,
        batch_format="numpy",
        compute=_pool(rd, actors, actor_cpus, gpus),
        num_cpus=actor_cpus,
        num_gpus=gpus or None,
        resources=dict(actor_resources) if actor_resources else None,
        fn_constructor_kwargs={"model": handle.source, "model_sha256": handle.sha256, **settings},
    )


def guess_prepare_batch(sources: list[str]) -> int:
    """Inputs per decode task: about :data:`PREPARE_BYTES` of files by the median size of the
    first source's first files (16 to :data:`PREPARE_BATCH`; the maximum when nothing could be
    sampled, e.g. URIs)."""
    sizes = sorted(sample_sizes(sources[0])) if sources else []
    if not sizes:
        return PREPARE_BATCH
    median = max(sizes[len(sizes) // 2], 1)
    return max(16, min(PREPARE_BATCH, PREPARE_BYTES // median))


def default_prepare_threads(prepare_batch: int) -> int:
    """Threads per decode task: :data:`PREPARE_THREADS` when the prepare batch is that of files
    of :data:`THREADED_BYTES` or more (see :func:`guess_prepare_batch`), else 1."""
    return PREPARE_THREADS if prepare_batch <= PREPARE_BYTES // THREADED_BYTES else 1


def _listed_inputs(
    rd: Any, sources: Any, recursive: bool, prepare_batch: int | None, done: Any
) -> tuple[Any, int]:
    """Step 1: one listing task per source (chunks of paths, ``done`` ones skipped), cut into
    blocks of ``prepare_batch`` rows (default: guessed); returns them and that batch."""
    sources = [sources] if isinstance(sources, (str, Path)) else sources
    sources = [os.fsdecode(s) for s in sources]
    prepare_batch = prepare_batch or guess_prepare_batch(sources)
    rows = rd.from_items(
        [{"source": s} for s in sources], override_num_blocks=len(sources)
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
    return rows.repartition(target_num_rows_per_block=prepare_batch), prepare_batch
