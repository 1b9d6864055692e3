"""What kind of model a path holds, told by its content: an ONNX file, a Keras model (``.keras``
zip or legacy HDF5), a TensorFlow SavedModel or an ``edgecnn train`` run folder.

Used where a user can hand the wrong kind (a Keras model to the edge runtime, an ONNX file to
``export``), so the message can say what the file is and what to do, instead of a parser error.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from edgecnn.user_files import read_head

ONNX = "onnx"
KERAS = "keras"  # Keras 3 .keras zip, or a legacy .h5
RUN_FOLDER = "run folder"  # written by `edgecnn train`: model.keras + labels.json + config.json
SAVED_MODEL = "SavedModel"

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def model_kind(path: str | os.PathLike[str]) -> str | None:
    """ONNX, KERAS, RUN_FOLDER, SAVED_MODEL or None (unknown, missing or unreadable)."""
    p = Path(path)
    if p.is_dir():
        if (p / "model.keras").is_file():
            return RUN_FOLDER
        if (p / "saved_model.pb").is_file():
            return SAVED_MODEL
        return None
    head = read_head(p, 8)  # never waits on a FIFO
    if not head:
        return None
    if head == _HDF5_MAGIC:
        return KERAS
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(p) as zf:
                names = set(zf.namelist())
        except (zipfile.BadZipFile, OSError):
            return None
        return KERAS if "config.json" in names else None
    # An ONNX ModelProto starts with field 1 (ir_version, a small varint): 0x08, 3..15.
    if p.suffix.lower() == ".onnx" or (len(head) > 1 and head[0] == 0x08 and 3 <= head[1] <= 15):
        return ONNX
    return None


def keras_not_onnx(name: str, kind: str | None) -> str | None:
    """The message for a Keras model (or run folder) given where an ONNX model is expected."""
    if kind == KERAS:
        return (
            f"{name}: this is a Keras model, not ONNX: export it with "
            f"`edgecnn export {name} -o model.onnx`"
        )
    if kind == RUN_FOLDER:
        return (
            f"{name}: this is a training run folder, not an ONNX model: export it with "
            f"`edgecnn export {name} -o model.onnx`"
        )
    if kind == SAVED_MODEL:
        return (
            f"{name}: this is a TensorFlow SavedModel, not ONNX: load it in TensorFlow, save it "
            "as .keras, then `edgecnn export` it"
        )
    return None


def _varint(fh: BinaryIO) -> int | None:
    """One protobuf varint from ``fh``; None at the end of the file."""
    value = shift = 0
    while True:
        byte = fh.read(1)
        if not byte:
            return None
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def onnx_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """ir_version, producer, opsets and metadata keys of an ONNX file, read from the protobuf's
    top-level fields (the graph is skipped, not parsed), so ``info`` needs no ``onnx`` package.
    No opsets if the file is not an ONNX protobuf."""
    facts: dict[str, Any] = {"opsets": {}}
    strings = {2: "producer", 3: "producer_version"}
    try:
        with open(path, "rb") as fh:
            while (key := _varint(fh)) is not None:
                field, wire = key >> 3, key & 7
                if wire == 0:
                    value = _varint(fh)
                    if field == 1:
                        facts["ir_version"] = value
                elif wire == 2:
                    size = _varint(fh) or 0
                    if field in strings:
                        facts[strings[field]] = fh.read(size).decode("utf-8", "replace")
                    elif field == 8:
                        domain, version = _opset(fh.read(size))
                        facts["opsets"][domain or "ai.onnx"] = version
                    elif field == 14:  # metadata_props: only the key (field 1) is kept
                        key_text, _ = _opset(fh.read(size))
                        facts.setdefault("metadata_keys", []).append(key_text)
                    else:
                        fh.seek(size, os.SEEK_CUR)
                else:
                    return {"opsets": {}}  # not a ModelProto at the top level
    except (OSError, ValueError):
        return {"opsets": {}}
    return facts


def _opset(data: bytes) -> tuple[str, int | None]:
    """(domain, version) of an OperatorSetIdProto; field 1 (the key) of a metadata entry."""
    fh = io.BytesIO(data)
    domain, version = "", None
    while (key := _varint(fh)) is not None:
        field, wire = key >> 3, key & 7
        if wire == 0:
            value = _varint(fh)
            if field == 2:
                version = value
        elif wire == 2:
            text = fh.read(_varint(fh) or 0)
            if field == 1:
                domain = text.decode("utf-8", "replace")
        else:
            break
    return domain, version
