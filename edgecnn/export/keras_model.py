"""Loading and checking a Keras classifier, and running it as the reference for verification.

Models load in Keras' safe mode: a file that needs unsafe deserialization (a ``Lambda`` layer's
pickled Python code) is refused unless the caller passes ``unsafe=True``, because loading it runs
code from the file. The checks here turn "the converter crashed somewhere" into one clear message:
one image input of the declared size, one class-vector output as wide as the label list.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from edgecnn import _deps
from edgecnn.errors import ExportError
from edgecnn.normalization import Normalization
from edgecnn.runtime.prediction import softmax
from edgecnn.spec import InputSpec
from edgecnn.user_files import UnusableFile, open_regular

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: A .keras archive (or .h5 file) may hold at most this many bytes once expanded: far above
#: the image classifiers edgecnn trains (a few MB to a few hundred MB), far below what would
#: exhaust an edge box. Its JSON members (config, metadata) at most KERAS_MAX_JSON.
KERAS_MAX_BYTES = 1024 * 1024 * 1024
KERAS_MAX_JSON = 32 * 1024 * 1024


def load_keras(path: str | Path, *, unsafe: bool = False) -> Any:
    """Load a ``.keras`` (or legacy ``.h5``) model for inference, in safe mode unless ``unsafe``."""
    path = Path(path)
    try:
        with open_regular(path, KERAS_MAX_BYTES) as fh:
            head = fh.read(8)
            if head.startswith(_ZIP_MAGIC):
                check_archive(fh, path)
    except UnusableFile as exc:
        raise ExportError(f"{exc.path}: cannot read the Keras model: {exc.reason}") from None
    except OSError as exc:
        raise ExportError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not (head.startswith(_ZIP_MAGIC) or head == _HDF5_MAGIC):
        raise ExportError(f"{path}: not a Keras model file (expected a .keras zip or an .h5 file)")
    keras = _deps.keras()
    suffix = path.suffix.lower()
    if (head.startswith(_ZIP_MAGIC) and suffix != ".keras") or (
        head == _HDF5_MAGIC and suffix not in (".h5", ".hdf5")
    ):
        raise ExportError(
            f"{path}: the file's content does not match its extension; name it "
            f"{'.keras' if head.startswith(_ZIP_MAGIC) else '.h5'}"
        )
    try:
        return keras.saving.load_model(str(path), compile=False, safe_mode=not unsafe)
    except Exception as exc:
        text = str(exc)
        if "safe_mode" in text or "unsafe_deserialization" in text:
            raise ExportError(
                f"{path}: the model needs unsafe deserialization (for example a Lambda layer "
                "holding Python code), which can run arbitrary code; pass `unsafe` only if you "
                "trust the file"
            ) from exc
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise ExportError(f"{path}: cannot load the Keras model: {first}") from exc


def check_archive(fh: BinaryIO, path: Path, limit: int = KERAS_MAX_BYTES) -> None:
    """Refuse a ``.keras`` zip whose members expand beyond ``limit`` in all, or whose JSON
    expands beyond :data:`KERAS_MAX_JSON` (Keras would read it all into memory, several times)
    before Keras opens it. The sizes are those in the zip's directory, which bound what
    Python's zipfile will ever return for each member."""
    try:
        members = zipfile.ZipFile(fh).infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ExportError(f"{path}: not a readable .keras archive ({exc})") from None
    total = sum(m.file_size for m in members)
    if total > limit:
        raise ExportError(
            f"{path}: the archive expands to {total:,} bytes, over the {limit:,}-byte limit "
            "for a .keras model; refused before loading"
        )
    for member in members:
        if member.filename.endswith(".json") and member.file_size > KERAS_MAX_JSON:
            raise ExportError(
                f"{path}: {member.filename} expands to {member.file_size:,} bytes, over the "
                f"{KERAS_MAX_JSON:,}-byte limit for a model's configuration; refused before loading"
            )


def check_model(model: Any, spec: InputSpec, num_labels: int) -> None:
    """Refuse a model whose input is not the declared image or whose output is no class vector."""
    if len(model.inputs) != 1:
        raise ExportError(f"the model has {len(model.inputs)} inputs; an image classifier has one")
    if len(model.outputs) != 1:
        raise ExportError(
            f"the model has {len(model.outputs)} outputs; "
            "expected one class vector [batch, classes]"
        )
    in_shape = tuple(model.inputs[0].shape)
    if len(in_shape) != 4:
        raise ExportError(f"the model input has shape {in_shape}; expected [batch, H, W, C] (NHWC)")
    _, h, w, c = in_shape
    if c is not None and c != spec.channels:
        raise ExportError(
            f"the model input has {c} channel(s) but the input spec says {spec.channels} "
            f"(color {spec.color!r}); fix `color`"
        )
    if (h is not None and h != spec.height) or (w is not None and w != spec.width):
        raise ExportError(
            f"the model input is {h}x{w} but the input spec says {spec.height}x{spec.width}; "
            "fix `input_size`"
        )
    out_shape = tuple(model.outputs[0].shape)
    if len(out_shape) != 2 or out_shape[1] is None or out_shape[1] < 2:
        raise ExportError(
            f"the model output has shape {out_shape}, not a class vector [batch, classes >= 2]"
        )
    if out_shape[1] != num_labels:
        raise ExportError(
            f"the model outputs {out_shape[1]} classes but there are {num_labels} labels"
        )


def _last_activation(model: Any) -> str | None:
    layer = model.layers[-1] if model.layers else None
    if layer is None:
        return None
    if type(layer).__name__ == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None)


def detect_output(model: Any, spec: InputSpec, normalization: Normalization) -> str:
    """'probabilities' or 'logits': from the last layer, else from the outputs on noise images.

    A softmax (or a layer with softmax activation) at the end means probabilities; a linear end
    means logits. Otherwise the model is run on random images: rows in [0, 1] summing to 1 are
    probabilities.
    """
    name = _last_activation(model)
    if name == "softmax":
        return "probabilities"
    if name == "linear":
        return "logits"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, *spec.shape), dtype=np.uint8)
    out = np.asarray(model(normalization.apply(images), training=False), dtype=np.float64)
    rows_ok = np.all(out >= -1e-6) and np.all(out <= 1 + 1e-6)
    sums_ok = np.allclose(out.sum(axis=1), 1.0, atol=1e-3)
    return "probabilities" if rows_ok and sums_ok else "logits"


def keras_probabilities(
    model: Any,
    images: np.ndarray,
    normalization: Normalization,
    output: str,
    batch_size: int | None = None,
) -> np.ndarray:
    """Class probabilities of the Keras model on uint8 NHWC images (the verification reference)."""
    from edgecnn.export.verify import batch_size_for

    batch_size = batch_size or batch_size_for(*images.shape[1:3])
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = normalization.apply(images[start : start + batch_size])
        chunks.append(np.asarray(model(batch, training=False), dtype=np.float64))
    out = np.concatenate(chunks) if chunks else np.zeros((0, 0))
    return softmax(out) if output == "logits" else out
