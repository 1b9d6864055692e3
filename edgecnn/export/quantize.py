"""fp16 and int8 variants of the fp32 graph, with settings chosen for the CPU that will run them.

* ``int8`` (static, QDQ): activations and weights quantized with ranges calibrated on real images
  (the same :func:`~edgecnn.preprocess.load_image` pixels the runtime feeds). On x86 CPUs the fast
  integer kernels multiply uint8 activations by int8 weights (U8S8), so the defaults are uint8
  activations, int8 per-channel weights, and ``reduce_range`` (7-bit weights) unless the user
  names a target that has VNNI (:data:`TARGETS`): without VNNI the AVX2 ``vpmaddubsw`` path can
  saturate 8-bit x 8-bit sums, and a model moves to CPUs other than the one exporting it. The final
  Softmax stays float so probabilities keep full resolution and sum to 1.
* ``int8-dynamic``: weights quantized offline, activations per batch at run time; no calibration.
* ``fp16``: float16 weights and arithmetic for GPUs; uint8 input and float32 output are kept.
"""

from __future__ import annotations

import platform
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import _deps
from edgecnn.errors import ExportError
from edgecnn.export.convert import INPUT_NAME, check_operators

METHODS = ("minmax", "entropy", "percentile")
_INT_TYPES = ("uint8", "int8")


#: The CPUs a static int8 model is quantized for, recorded in its metadata: ``portable``
#: (7-bit weights, ``reduce_range``: exact on every CPU, the default), ``vnni`` (8-bit weights
#: for x86 with VNNI / AMX: on x86 without VNNI onnxruntime's uint8 x int8 kernels can saturate)
#: and ``arm``. The CPU the export runs on never decides: models move between machines.
TARGETS = ("portable", "vnni", "arm")


def _x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@dataclass(frozen=True)
class QuantSettings:
    """Static / dynamic int8 settings; the defaults suit the CPU this runs on."""

    activations: str = "uint8"
    weights: str = "int8"
    per_channel: bool = True
    reduce_range: bool | None = None  # None: decided by ``target``
    method: str = "minmax"
    target: str | None = None  # None: portable, or what an explicit reduce_range implies

    def resolved(self) -> QuantSettings:
        """Validated copy with ``reduce_range`` decided."""
        if self.activations not in _INT_TYPES or self.weights not in _INT_TYPES:
            raise ExportError("activation and weight types must be uint8 or int8")
        if self.method not in METHODS:
            raise ExportError(f"calibration method {self.method!r} is not one of {METHODS}")
        if self.target is not None and self.target not in TARGETS:
            raise ExportError(f"int8 target {self.target!r} is not one of {', '.join(TARGETS)}")
        reduce_range = self.reduce_range
        if reduce_range is None:
            reduce_range = self.target in (None, "portable")
        target = self.target
        if target is None:
            target = "portable" if reduce_range else ("vnni" if _x86() else "arm")
        return QuantSettings(
            self.activations, self.weights, self.per_channel, reduce_range, self.method, target
        )

    def to_dict(self) -> dict[str, Any]:
        """For the metadata's ``quantization`` object."""
        return asdict(self.resolved())


def _qtype(name: str) -> Any:
    from onnxruntime.quantization import QuantType

    return QuantType.QUInt8 if name == "uint8" else QuantType.QInt8


def _preprocess(proto: Any, folder: Path) -> Path:
    """ORT's quantization pre-processing (shape inference + graph optimization) to a file.

    Operators ONNX does not define are refused first: onnxruntime's symbolic shape inference
    cannot finish on them, and it then saves the whole model, weights included, to
    ``sym_shape_infer_temp.onnx`` in the working directory before raising."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    check_operators(proto)
    onnx = _deps.onnx()
    src, dst = folder / "fp32.onnx", folder / "pre.onnx"
    onnx.save(proto, str(src))
    try:
        try:
            quant_pre_process(str(src), str(dst))
        except ImportError:  # sympy missing: symbolic shape inference is optional for CNNs
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    except Exception as exc:
        raise ExportError(
            f"int8 pre-processing (onnxruntime shape inference) failed: {exc}"
        ) from exc
    return dst


def _softmax_nodes(path: Path) -> list[str]:
    onnx = _deps.onnx()
    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Softmax"]


def quantize_static(
    proto: Any, calibration: np.ndarray, settings: QuantSettings, batch_size: int | None = None
) -> Any:
    """Static QDQ int8 model calibrated on uint8 NHWC images.

    Ranges are merged batch by batch (onnxruntime's strided calibration, one batch per stride),
    so only one batch of intermediate tensors is held at a time; onnxruntime's default keeps
    every tensor of every calibration image (about 10 GB for 300 images at 256x256).
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    from edgecnn.export.verify import batch_size_for

    if len(calibration) == 0:
        raise ExportError("no calibration images could be loaded")
    settings = settings.resolved()
    onnx = _deps.onnx()
    size = batch_size or batch_size_for(*calibration.shape[1:3])
    starts = list(range(0, len(calibration), size))

    class Reader(CalibrationDataReader):
        """Batches of the calibration images; ``set_range`` selects batches (strided mode)."""

        def __init__(self) -> None:
            self._todo: Iterator[int] = iter(starts)

        def __len__(self) -> int:
            return len(starts)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._todo = iter(starts[start_index:end_index])

        def get_next(self) -> dict[str, np.ndarray] | None:
            i = next(self._todo, None)
            return None if i is None else {INPUT_NAME: calibration[i : i + size]}

    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[settings.method]
    with tempfile.TemporaryDirectory(prefix="edgecnn-quant-") as tmp:
        pre = _preprocess(proto, Path(tmp))
        out = Path(tmp) / "int8.onnx"
        try:
            ort_quantize_static(
                str(pre),
                str(out),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=settings.per_channel,
                reduce_range=bool(settings.reduce_range),
                activation_type=_qtype(settings.activations),
                weight_type=_qtype(settings.weights),
                nodes_to_exclude=_softmax_nodes(pre),
                calibrate_method=method,
                calibration_providers=["CPUExecutionProvider"],
                extra_options={"CalibStridedMinMax": 1},
            )
        except Exception as exc:
            raise ExportError(f"static int8 quantization failed: {exc}") from exc
        return onnx.load(str(out))


def quantize_dynamic(proto: Any, settings: QuantSettings) -> Any:
    """Dynamic int8: weights quantized now, activations at run time (no calibration data)."""
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    settings = settings.resolved()
    onnx = _deps.onnx()
    with tempfile.TemporaryDirectory(prefix="edgecnn-quant-") as tmp:
        pre = _preprocess(proto, Path(tmp))
        out = Path(tmp) / "dyn.onnx"
        try:
            ort_quantize_dynamic(
                str(pre),
                str(out),
                per_channel=settings.per_channel,
                reduce_range=bool(settings.reduce_range),
                weight_type=_qtype(settings.weights),
            )
        except Exception as exc:
            raise ExportError(f"dynamic int8 quantization failed: {exc}") from exc
        return onnx.load(str(out))


def to_fp16(proto: Any) -> Any:
    """float16 weights and compute; the uint8 input and float32 ``probabilities`` are kept."""
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:
        raise ExportError(
            "fp16 conversion needs onnxruntime's transformers tools (onnxruntime >= 1.16)"
        ) from exc
    onnx = _deps.onnx()
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)  # the converter edits in place; the fp32 graph is still needed
    try:
        return convert_float_to_float16(copy, keep_io_types=True)
    except Exception as exc:
        raise ExportError(f"fp16 conversion failed: {exc}") from exc
