"""The TensorFlow half of an export, run in a child process that exits when it is done.

The child loads the Keras model, checks it, runs it on the verification images (the reference
the ONNX graph must match, and the dead-model check), converts it and writes the fp32 ONNX file.
The parent (``export_model``) never imports TensorFlow: it verifies, quantizes and writes from
that file. Why: TensorFlow and a loaded Keras model keep their memory until the process exits
(measured on the 277 MB ``plant`` network: 0.7 GB for the import, ~1.1 GB resident for the
loaded model, returned neither by ``del`` nor by ``malloc_trim``); in one process the
onnxruntime sessions and the quantizer came on top of that, in two the peak is the larger half.

Protocol (a private folder the parent owns): ``job.json`` + ``images.npy`` in; progress lines on
the child's original stdout; ``result.json`` + ``reference.npy`` + ``fp32.onnx`` out, or
``result.json`` holding the error. Whatever TensorFlow and the converters print goes to stderr,
which the parent passes on (without TensorFlow's start-up banners when the application asked
TensorFlow to be quiet, ``TF_CPP_MIN_LOG_LEVEL``).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import _deps
from edgecnn.errors import EdgecnnError, ExportError, MissingDependencyError
from edgecnn.heap import return_freed_memory

JOB, IMAGES, RESULT, REFERENCE, FP32 = (
    "job.json",
    "images.npy",
    "result.json",
    "reference.npy",
    "fp32.onnx",
)
Log = Callable[[str], None]


@dataclass(frozen=True)
class KerasJob:
    """What the child needs (plain JSON values: it crosses a process boundary)."""

    model_path: str
    unsafe: bool
    input: dict[str, Any]  # InputSpec.to_dict()
    num_labels: int
    output: str  # "auto", "probabilities" or "logits"
    normalization: dict[str, Any]  # Normalization.to_dict()
    opset: int
    force: bool
    images_source: str  # where the verification images come from, for the progress line


@dataclass(frozen=True)
class KerasHalf:
    """What the child produced: the output kind, Keras' probabilities on the verification
    images, the fp32 ONNX file (in the parent's folder) and the tool versions used."""

    output_kind: str
    probabilities: np.ndarray
    onnx_path: Path
    versions: dict[str, str]


def run_keras_half(job: KerasJob, images: np.ndarray, folder: Path, say: Log) -> KerasHalf:
    """Run the TensorFlow half in a child process; ``folder`` is an empty private folder that
    receives the files. Progress lines go to ``say``; the child's errors are raised here."""
    folder = Path(folder)
    (folder / JOB).write_text(json.dumps(asdict(job)), encoding="utf-8")
    np.save(folder / IMAGES, images, allow_pickle=False)
    command = [sys.executable, "-m", __name__, str(folder)]
    env = dict(os.environ)
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    with open(folder / "stderr.txt", "w+b") as err:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                say(line.rstrip("\n"))
            code = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted: do not leave TensorFlow running
                proc.kill()
                proc.wait()
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    _pass_on(stderr)
    result_file = folder / RESULT
    if code != 0 or not result_file.is_file():
        raise ExportError(f"the Keras/TensorFlow step {_ended(code)}: {_last_line(stderr)}")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    if "error" in result:
        if result.get("package"):
            raise MissingDependencyError(result["package"], result["extra"])
        raise ExportError(result["error"])
    return KerasHalf(
        output_kind=result["output_kind"],
        probabilities=np.load(folder / REFERENCE, allow_pickle=False),
        onnx_path=folder / FP32,
        versions=result["versions"],
    )


def _ended(code: int) -> str:
    if code < 0:
        try:
            name = f" {signal.Signals(-code).name}"
        except ValueError:
            name = ""
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"was killed by signal {-code}{name}{hint}"
    return f"failed (exit code {code})"


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


def _pass_on(stderr: str) -> None:
    """The child's stderr to ours, minus TensorFlow's start-up banners if TensorFlow was told
    to be quiet (what the same import would have shown in this process)."""
    quiet = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") not in ("", "0")
    _deps.pass_on_stderr(stderr, drop_startup_noise=quiet)


# --- the child -----------------------------------------------------------------------------


def keras_half(job: KerasJob, images: np.ndarray, folder: Path, say: Log) -> dict[str, Any]:
    """Load, check, run and convert (in the child); writes the ONNX file and the reference."""
    from edgecnn.export import convert, keras_model
    from edgecnn.normalization import Normalization
    from edgecnn.spec import InputSpec
    from edgecnn.tools import model_health

    spec = InputSpec.from_dict(job.input)
    normalization = Normalization(**job.normalization)
    say(f"loading {job.model_path}")
    kmodel = keras_model.load_keras(job.model_path, unsafe=job.unsafe)
    keras_model.check_model(kmodel, spec, job.num_labels)
    output_kind = job.output
    if output_kind == "auto":
        output_kind = keras_model.detect_output(kmodel, spec, normalization)
    say(f"running Keras on {len(images)} verification images ({job.images_source})")
    probs = keras_model.keras_probabilities(kmodel, images, normalization, output_kind)
    problem = model_health.output_problem(probs)
    if problem and not job.force:
        raise ExportError(
            f"the model looks dead: {problem}. Nothing was written; check the weights "
            "(an untrained or collapsed model), or pass --force to export it anyway"
        )
    np.save(folder / REFERENCE, probs, allow_pickle=False)
    return_freed_memory()  # the reference run's activations, before the conversion's peak
    say(f"converting to ONNX (opset {job.opset}, output: {output_kind})")
    frozen = convert.freeze(
        kmodel,
        spec,
        normalization=normalization,
        append_softmax=output_kind == "logits",
        opset=job.opset,
    )
    del kmodel  # its variables are one more copy of the weights, the frozen graph has them
    gc.collect()
    proto = convert.frozen_to_onnx(frozen)
    del frozen
    data = proto.SerializeToString()
    del proto
    (folder / FP32).write_bytes(data)
    return {
        "output_kind": output_kind,
        "versions": {"tf2onnx": _deps.tf2onnx().__version__, "keras": _deps.keras().__version__},
    }


def main(folder: str) -> int:
    """The child's entry point: run the job in ``folder``; the result file says how it went."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the protocol

    def say(message: str) -> None:
        protocol.write(message.replace("\n", " ") + "\n")

    where = Path(folder)
    try:
        job = KerasJob(**json.loads((where / JOB).read_text(encoding="utf-8")))
        images = np.load(where / IMAGES, allow_pickle=False)
        result = keras_half(job, images, where, say)
    except MissingDependencyError as exc:
        result = {"error": str(exc), "package": exc.package, "extra": exc.extra}
    except EdgecnnError as exc:
        result = {"error": str(exc)}
    (where / RESULT).write_text(json.dumps(result), encoding="utf-8")
    protocol.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
