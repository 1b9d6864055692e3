"""Run Python code in a child process bounded in time and memory (for cases that used to hang
or eat the memory: a FIFO, /dev/zero, a zip bomb). The bound only protects the suite: tests
assert on what the child printed, never on how long it took."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
from typing import Any

#: Generous: onnxruntime + OpenCV + Pillow map ~1.5 GB of address space before doing anything.
MEMORY_BYTES = 4 * 1024**3
TIMEOUT_S = 120


def _limit(memory: int) -> Any:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return apply


def run_python(
    code: str, *, memory: int = MEMORY_BYTES, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented) in a child Python with an address-space limit and a timeout."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        preexec_fn=_limit(memory),
        cwd=cwd,
        env=env,
    )


def last_json(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON document the child printed last on stdout (fails showing stderr otherwise)."""
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
