"""Starting Ray on this machine for a run: settings and warm decode workers.

Ray starts a worker process for a task on demand (on a busy 2-core box ~1.5 s each, plus
importing OpenCV and edgecnn), and by default kills idle workers beyond one per CPU after a
second. So right after the inference actors were ready, a run of large photos decoded in one
task for ~5 s while Ray started the processes for the others (300 photos: 0.54-0.86x local).
When edgecnn starts Ray itself (no ``--address``), it keeps idle workers for a while
(:data:`SYSTEM_CONFIG`) and :func:`warm_decode_workers` starts, during start-up, the processes
the decode tasks will run in, with the decode stage's modules already imported. On an existing
cluster neither applies (its settings are its own).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from typing import Any

#: ``ray.init(_system_config=...)`` for a Ray instance started here: idle workers stay up to a
#: minute (Ray's default: those beyond one per CPU are killed after 1 s), long enough for the
#: run's decode tasks to find the warm ones.
SYSTEM_CONFIG = {"idle_worker_killing_time_threshold_ms": 60_000}


def start(**init_kwargs: Any) -> bool:
    """``ray.init`` of a new local instance with :data:`SYSTEM_CONFIG`; True when it started
    one (False: ``RAY_ADDRESS`` names a running cluster, joined with its own settings)."""
    import ray

    if os.environ.get("RAY_ADDRESS"):
        ray.init(**init_kwargs)
        return False
    ray.init(_system_config=dict(SYSTEM_CONFIG), **init_kwargs)
    return True


def decode_workers(cpus: float, actor_cpus: float, actors: int, prepare_cpus: float) -> int:
    """How many decode tasks fit beside ``actors`` actors of ``actor_cpus`` (at least 1, at most
    two per CPU: each is a process)."""
    free = max(cpus - actor_cpus * actors, prepare_cpus)
    return max(1, min(int(free / prepare_cpus + 1e-9), math.ceil(2 * cpus)))


def _hold(folder: str, count: int, timeout: float) -> int:
    """A warm-up task: import the decode stage, then wait until ``count`` tasks are running (one
    file each in ``folder``) so each holds its own worker process; returns the process id."""
    try:  # Ray Data's private modules a decode task imports: moved in another Ray, still warm
        from ray.data._internal.arrow_block import ArrowBlockAccessor  # noqa: F401
        from ray.data._internal.execution.operators import map_operator  # noqa: F401
        from ray.data._internal.tensor_extensions import arrow  # noqa: F401
    except ImportError:
        pass

    import edgecnn.scale.image_stage  # noqa: F401  (OpenCV, NumPy, edgecnn.preprocess)

    pid = os.getpid()
    open(os.path.join(folder, str(pid)), "w").close()
    deadline = time.monotonic() + timeout
    while len(os.listdir(folder)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return pid


def warm_decode_workers(count: int, prepare_cpus: float, timeout: float = 30.0) -> int:
    """Start ``count`` worker processes of this (single-machine) Ray instance with the decode
    stage imported, as decode tasks would (same job, same resources); returns how many distinct
    processes ran. Only for a Ray instance started on this machine (the tasks meet through a
    local folder)."""
    import ray

    hold = ray.remote(num_cpus=prepare_cpus)(_hold)
    with tempfile.TemporaryDirectory(prefix="edgecnn-warm-") as folder:
        pids = ray.get([hold.remote(folder, count, timeout) for _ in range(count)])
    return len(set(pids))


def warm_up(actors: int, actor_cpus: float, prepare_cpus: float) -> int:
    """Warm the decode workers that fit beside ``actors`` inference actors on this (just
    started, single-machine) Ray instance's CPUs: the one warm-up of the CLI and the scale
    benchmark. Returns how many processes are warm."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 1.0)
    count = decode_workers(cpus, actor_cpus, actors, prepare_cpus)
    return warm_decode_workers(count, prepare_cpus)
