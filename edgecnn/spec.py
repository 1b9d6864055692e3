"""ModelSpec: the self-description an exported model carries in its ONNX metadata.

The JSON lives in ``metadata_props["edgecnn"]`` (see ``export/CONTRACT.md``). The runtime reads it
and never guesses; export writes it; training produces the pieces (labels, input spec).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from edgecnn.errors import ModelError
from edgecnn.strict_json import MAX_SIDE, Fields, loads
from edgecnn.user_files import UnusableFile, read_text

METADATA_KEY = "edgecnn"
FORMAT_VERSION = 1

COLORS = ("rgb", "bgr", "gray")
FITS = ("crop", "stretch", "pad", "height")
#: Where ``pad`` / ``height`` place the resized image horizontally (vertically ``pad`` centres).
ANCHORS = ("center", "left")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")
PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-static")


@dataclass(frozen=True)
class InputSpec:
    """What the model's ``image`` input expects: size, colour order and how a photo is fitted."""

    height: int
    width: int
    channels: int = 3
    color: str = "rgb"
    fit: str = "crop"
    interpolation: str = "bilinear"
    #: ``pad`` / ``height`` fits: the side the image keeps, and the fill (pixel units, 0..255).
    anchor: str = "center"
    pad_value: int = 0

    def __post_init__(self) -> None:
        problems = []
        sides = (self.height, self.width)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in sides):
            problems.append("height and width must be integers")
        elif not all(1 <= v <= MAX_SIDE for v in sides):
            problems.append(f"size {self.height}x{self.width} is outside 1..{MAX_SIDE}")
        if not isinstance(self.color, str) or self.color not in COLORS:
            problems.append(f"color {self.color!r} is not one of {', '.join(COLORS)}")
        expected = 1 if self.color == "gray" else 3
        if isinstance(self.channels, bool) or self.channels != expected:
            problems.append(
                f"color {self.color!r} needs {expected} channel(s), not {self.channels!r}"
            )
        if not isinstance(self.fit, str) or self.fit not in FITS:
            problems.append(f"fit {self.fit!r} is not one of {', '.join(FITS)}")
        if not isinstance(self.interpolation, str) or self.interpolation not in INTERPOLATIONS:
            problems.append(
                f"interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}"
            )
        if not isinstance(self.anchor, str) or self.anchor not in ANCHORS:
            problems.append(f"anchor {self.anchor!r} is not one of {', '.join(ANCHORS)}")
        value = self.pad_value
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            problems.append(f"pad value {value!r} is not an integer in 0..255 (pixel units)")
        if problems:
            raise ModelError("invalid input spec: " + "; ".join(problems))

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.height, self.width

    @property
    def shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one preprocessed image."""
        return self.height, self.width, self.channels

    @classmethod
    def from_fields(cls, fields: Fields) -> InputSpec:
        """Read the contract's ``input`` object strictly: every key present, with its type."""
        values = {
            "height": fields.integer("height", 1, MAX_SIDE),
            "width": fields.integer("width", 1, MAX_SIDE),
            "channels": fields.integer("channels", 1, 3),
            "color": fields.string("color", COLORS),
            "fit": fields.string("fit", FITS),
            "interpolation": fields.string("interpolation", INTERPOLATIONS),
            "anchor": fields.string("anchor", ANCHORS, default="center"),
            "pad_value": fields.integer("pad_value", 0, 255, default=0),
        }
        try:
            return cls(**values)
        except ModelError as exc:
            fields.fail(str(exc))

    @classmethod
    def from_dict(cls, data: Any, where: str = "input spec") -> InputSpec:
        """Build from the ``input`` object of the metadata JSON (strict, see from_fields)."""
        return cls.from_fields(Fields(data, where))

    def to_dict(self) -> dict[str, Any]:
        """The contract's ``input`` object (``anchor`` / ``pad_value`` only when not default,
        so models that do not use them read the same in older versions)."""
        data = asdict(self)
        for key, default in (("anchor", "center"), ("pad_value", 0)):
            if data[key] == default:
                del data[key]
        return data


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"HxW"`` (or a single ``"N"`` for square) into (height, width)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+))?\s*", text)
    if not match:
        raise ValueError(f"size {text!r} is not HxW (for example 224x224)")
    height = int(match.group(1))
    width = int(match.group(2) or match.group(1))
    if height < 1 or width < 1:
        raise ValueError(f"size {text!r} must be positive")
    return height, width


@dataclass(frozen=True)
class ModelSpec:
    """Everything the runtime needs to use a model, plus provenance for people."""

    labels: tuple[str, ...]
    input: InputSpec
    precision: str = "fp32"
    architecture: str | None = None
    created: str | None = None
    edgecnn_version: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    quantization: dict[str, Any] | None = None
    verification: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.labels:
            raise ModelError("model spec has no labels")
        if len(set(self.labels)) != len(self.labels):
            raise ModelError("model spec has duplicate labels")
        if self.precision not in PRECISIONS:
            raise ModelError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")

    @property
    def num_classes(self) -> int:
        """Number of labels, which must equal the model's output width."""
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        """The metadata object, in the documented key order."""
        data: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "labels": list(self.labels),
            "input": self.input.to_dict(),
            "precision": self.precision,
        }
        for key in ("architecture", "created", "edgecnn_version"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.training:
            data["training"] = self.training
        if self.quantization is not None:
            data["quantization"] = self.quantization
        if self.verification is not None:
            data["verification"] = self.verification
        data.update(self.extra)
        return data

    def to_json(self) -> str:
        """Compact JSON for ``metadata_props["edgecnn"]``."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Any, where: str = "edgecnn metadata") -> ModelSpec:
        """Read the metadata object strictly: a one-line ModelError names any field that breaks
        the contract; unknown keys are kept in ``extra`` (nested 8 levels at most)."""
        fields = Fields(data, where)
        fmt = fields.integer("format", default=FORMAT_VERSION)
        if fmt != FORMAT_VERSION:
            raise ModelError(
                f"{where}: format {fmt!r} is not supported by this version "
                f"(expects {FORMAT_VERSION}); upgrade edgecnn"
            )
        export = fields.child("export", default=None)
        if export is not None:
            export.child("normalization", default=None)
        values = {
            "labels": fields.strings("labels"),
            "input": InputSpec.from_fields(fields.child("input")),
            "precision": fields.string("precision", PRECISIONS),
            "architecture": fields.string("architecture", default=None),
            "created": fields.string("created", default=None),
            "edgecnn_version": fields.string("edgecnn_version", default=None),
            "training": fields.scalars("training", default={}) or {},
            "quantization": fields.scalars("quantization", default=None),
            "verification": fields.scalars("verification", default=None),
            "extra": {k: fields.json_value(k) for k in data if k not in _KNOWN},
        }
        try:
            return cls(**values)
        except ModelError as exc:
            fields.fail(str(exc))

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "edgecnn metadata") -> ModelSpec:
        """Parse the JSON string stored in the ONNX metadata (strict, see :meth:`from_dict`)."""
        return cls.from_dict(loads(text, where), where)


_KNOWN = frozenset(
    (
        "format",
        "labels",
        "input",
        "precision",
        "architecture",
        "created",
        "edgecnn_version",
        "training",
        "quantization",
        "verification",
    )
)


def read_labels_file(path: str) -> tuple[str, ...]:
    """Labels from a text file (one per line) or a JSON list / ``{"labels": [...]}``."""
    try:
        text = read_text(path)
    except UnusableFile as exc:
        raise ModelError(f"{exc.path}: cannot read labels: {exc.reason}") from None
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        data = loads(stripped, f"{path}: labels file")
        if isinstance(data, dict):
            data = data.get("labels")
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise ModelError(f"{path}: expected a JSON list of label strings")
        labels = tuple(data)
    else:
        labels = tuple(line.strip() for line in stripped.splitlines() if line.strip())
    if not labels:
        raise ModelError(f"{path}: labels file is empty")
    return labels
