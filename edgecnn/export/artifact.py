"""The file itself: metadata into ``metadata_props``, the ONNX checker, and an atomic write.

The model is serialized to a temporary file in the destination folder, flushed to disk and then
renamed over the destination, so a crash or a refused export never leaves a half-written
``.onnx`` where a runtime could pick it up.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from edgecnn import _deps
from edgecnn.errors import ExportError
from edgecnn.spec import METADATA_KEY, ModelSpec
from edgecnn.user_files import check_output_path


def check_destination(path: str | Path) -> Path:
    """Refuse early (before any slow work) an output path whose folder is missing or read-only:
    :func:`edgecnn.user_files.check_output_path` for a file replaced by :func:`write_atomic`."""
    check_output_path(path, replaced=True, example="model.onnx", error=ExportError)
    return Path(path)


def set_metadata(proto: Any, spec: ModelSpec) -> None:
    """Store the spec JSON under ``metadata_props["edgecnn"]`` (replacing any previous one)."""
    kept = [p for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    for prop in kept:
        proto.metadata_props.add(key=prop.key, value=prop.value)
    proto.metadata_props.add(key=METADATA_KEY, value=spec.to_json())


def serialize_checked(proto: Any) -> bytes:
    """Run ``onnx.checker`` (full check, with shape inference) and return the bytes to write.

    The checker reads the serialized bytes that will be written (given a ModelProto it would
    serialize its own copy first).
    """
    onnx = _deps.onnx()
    data = proto.SerializeToString()
    try:
        onnx.checker.check_model(data, full_check=True)
    except Exception as exc:
        raise ExportError(f"the exported graph fails onnx.checker: {exc}") from exc
    return data


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write bytes via a temporary sibling file + rename; no partial file survives a failure."""
    out = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, out)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ExportError(f"{out}: cannot write: {exc.strerror or exc}") from exc
        raise
