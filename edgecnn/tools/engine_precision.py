"""Is a reduced engine precision safe for this model? bf16 / f16 against fp32, measured.

OpenVINO can run a model's f32 weights in bf16 (CPUs with AVX-512 bf16 or AMX) or f16: faster,
but top-1 changes on images whose two best classes are close (measured: 12.5% of images of a
MobileNetV2 with small margins). edgecnn runs f32 unless asked; before asking, ``edgecnn eval
--precision bf16`` and ``edgecnn export --engine-precision bf16`` measure the agreement on real
images: the same ``.onnx`` on onnxruntime CPU (f32, the reference every parity number of the
export uses) and on OpenVINO at the asked precision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.runtime.engines.base import PRECISIONS, Engine, EngineOptions, ModelSource

#: Images per engine run while measuring.
CHUNK = 32


@dataclass(frozen=True)
class PrecisionAgreement:
    """How OpenVINO at ``precision`` agreed with fp32 on ``images`` images.

    ``ran``: the precision OpenVINO reports it compiled (a CPU without bf16 runs f32).
    ``accuracy`` / ``accuracy_fp32``: on the labelled images (None when none is labelled).
    """

    precision: str
    ran: str
    engine: str
    images: int
    top1_agreement: float
    differ: int
    max_abs_diff: float
    accuracy: float | None = None
    accuracy_fp32: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """For JSON reports."""
        return asdict(self)

    def line(self) -> str:
        """One line for the terminal."""
        ran = "" if self.ran == self.precision else f" (OpenVINO ran {self.ran} on this CPU)"
        text = (
            f"engine precision {self.precision}{ran}: top-1 agrees with fp32 on "
            f"{self.top1_agreement:.2%} of {self.images} images ({self.differ} differ), "
            f"max |dp| {self.max_abs_diff:.3g}"
        )
        if self.accuracy is not None and self.accuracy_fp32 is not None:
            text += f"; accuracy {self.accuracy:.2%} (fp32 {self.accuracy_fp32:.2%})"
        return text


def open_pair(model: ModelSource, precision: str) -> tuple[Engine, Engine]:
    """The fp32 reference (onnxruntime CPU) and OpenVINO at ``precision`` on ``model``."""
    if precision not in PRECISIONS or precision == "f32":
        reduced = ", ".join(p for p in PRECISIONS if p != "f32")
        raise EdgecnnError(f"`precision` to compare with fp32 must be one of {reduced}")
    from edgecnn.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine
    from edgecnn.runtime.engines.openvino_engine import OpenVinoEngine

    reference = OnnxRuntimeEngine(model, "cpu", EngineOptions(spinning=False))
    reduced_engine = OpenVinoEngine(model, EngineOptions(precision=precision))
    return reference, reduced_engine


def measure(
    model: ModelSource,
    precision: str,
    batches: Iterable[tuple[np.ndarray, list[int | None]]],
) -> PrecisionAgreement:
    """Run every batch (model input layout, true class index or None per image) on fp32 and
    on OpenVINO at ``precision``; their agreement. Needs the ``openvino`` extra."""
    reference, reduced = open_pair(model, precision)
    agree = images = 0
    max_diff = 0.0
    right = right_fp32 = labelled = 0
    try:
        for batch, truth in batches:
            for start in range(0, len(batch), CHUNK):
                part = batch[start : start + CHUNK]
                want = np.asarray(reference.run(part), np.float32)
                got = np.asarray(reduced.run(part), np.float32)
                top, top_fp32 = got.argmax(axis=1), want.argmax(axis=1)
                agree += int((top == top_fp32).sum())
                images += len(part)
                max_diff = max(max_diff, float(np.abs(got - want).max(initial=0.0)))
                for row, label in enumerate(truth[start : start + CHUNK]):
                    if label is not None:
                        labelled += 1
                        right += int(top[row] == label)
                        right_fp32 += int(top_fp32[row] == label)
        described = reduced.describe()
        ran = reduced.precision
    finally:
        reference.close()
        reduced.close()
    if not images:
        raise EdgecnnError("no images to compare the precisions on")
    return PrecisionAgreement(
        precision=precision,
        ran=ran,
        engine=described,
        images=images,
        top1_agreement=agree / images,
        differ=images - agree,
        max_abs_diff=max_diff,
        accuracy=right / labelled if labelled else None,
        accuracy_fp32=right_fp32 / labelled if labelled else None,
    )
