"""Is a reduced engine precision safe for this model? bf16 / f16 against fp32, measured.

OpenVINO can run a model's f32 weights in bf16 (CPUs with AVX-512 bf16 or AMX) or f16: faster,
but top-1 changes on images whose two best classes are close (measured: 12.5% of images of a
MobileNetV2 with small margins). edgecnn runs f32 unless asked; before asking, ``edgecnn eval
--precision bf16`` and ``edgecnn export --engine-precision bf16`` measure the agreement on real
images: the same ``.onnx`` on onnxruntime CPU (f32, the reference every parity number of the
export uses) and on OpenVINO at the asked precision. Each image is decoded once and each engine
runs it once: ``eval`` compares inside its own classify pass (:class:`ComparingModel`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.runtime.engines.base import PRECISIONS, Engine, EngineOptions, ModelSource
from edgecnn.runtime.prediction import Prediction

if TYPE_CHECKING:
    from edgecnn.runtime.classifier import Classifier

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


def check_reduced(precision: str) -> None:
    """EdgecnnError unless ``precision`` is one to compare with fp32 (bf16 / f16)."""
    if precision not in PRECISIONS or precision == "f32":
        reduced = ", ".join(p for p in PRECISIONS if p != "f32")
        raise EdgecnnError(f"`precision` to compare with fp32 must be one of {reduced}")


def open_reference(model: ModelSource) -> Engine:
    """The fp32 reference: onnxruntime CPU, threads not spinning (decoding shares the cores)."""
    from edgecnn.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine

    return OnnxRuntimeEngine(model, "cpu", EngineOptions(spinning=False))


class Tally:
    """The running agreement of reduced-precision outputs with the fp32 reference's."""

    def __init__(self) -> None:
        self.images = self.agree = 0
        self.max_diff = 0.0
        self.labelled = self.right = self.right_fp32 = 0

    def add(self, want: np.ndarray, got: np.ndarray, truth: Sequence[int | None]) -> None:
        """One batch: fp32 rows ``want``, reduced rows ``got``, true class (or None) per row."""
        top, top_fp32 = got.argmax(axis=1), want.argmax(axis=1)
        self.agree += int((top == top_fp32).sum())
        self.images += len(got)
        self.max_diff = max(self.max_diff, float(np.abs(got - want).max(initial=0.0)))
        for row, label in enumerate(truth):
            if label is not None:
                self.labelled += 1
                self.right += int(top[row] == label)
                self.right_fp32 += int(top_fp32[row] == label)

    def result(self, precision: str, reduced: Engine) -> PrecisionAgreement:
        """The agreement so far; ``reduced`` is the engine that ran ``precision``."""
        if not self.images:
            raise EdgecnnError("no images to compare the precisions on")
        labelled = self.labelled
        return PrecisionAgreement(
            precision=precision,
            ran=getattr(reduced, "precision", precision),
            engine=reduced.describe(),
            images=self.images,
            top1_agreement=self.agree / self.images,
            differ=self.images - self.agree,
            max_abs_diff=self.max_diff,
            accuracy=self.right / labelled if labelled else None,
            accuracy_fp32=self.right_fp32 / labelled if labelled else None,
        )


def measure(
    model: ModelSource,
    precision: str,
    batches: Iterable[tuple[np.ndarray, list[int | None]]],
) -> PrecisionAgreement:
    """Run every batch (model input layout, true class index or None per image) once on fp32
    and once on OpenVINO at ``precision``; their agreement. Needs the ``openvino`` extra."""
    check_reduced(precision)
    from edgecnn.runtime.engines.registry import open_engine

    reference = open_reference(model)
    try:
        reduced, _ = open_engine(model, "openvino", EngineOptions(precision=precision))
    except BaseException:
        reference.close()
        raise
    tally = Tally()
    try:
        for batch, truth in batches:
            for start in range(0, len(batch), CHUNK):
                part = batch[start : start + CHUNK]
                want = np.asarray(reference.run(part), np.float32)
                got = np.asarray(reduced.run(part), np.float32)
                tally.add(want, got, truth[start : start + CHUNK])
        return tally.result(precision, reduced)
    finally:
        reference.close()
        reduced.close()


class ComparingModel:
    """A batch model for the classify pipeline (:class:`~edgecnn.runtime.batch_pipeline.
    BatchModel`): ``classifier``'s predictions, unchanged, while the images it ran also run
    once on the fp32 ``reference`` and are tallied, so nothing is decoded or run twice.

    ``truth``: the true class index (or None) of each input, in the pipeline's input order.
    """

    def __init__(self, classifier: Classifier, reference: Engine, truth: Iterable[int | None]):
        self.classifier = classifier
        self.spec = classifier.spec
        self.reference = reference
        self.tally = Tally()
        self._truth: Iterator[int | None] = iter(truth)

    def finish_batch(
        self,
        sources: Sequence[str],
        prepared: Sequence[np.ndarray | None],
        errors: Sequence[str | None],
        timings: Sequence[dict[str, float]],
        top_k: int,
    ) -> list[Prediction]:
        """The classifier's predictions (all scores kept for the comparison, then ``top_k``),
        and the images it classified compared with fp32."""
        labels = self.spec.labels
        full = self.classifier.finish_batch(sources, prepared, errors, timings, len(labels))
        truth = [next(self._truth) for _ in sources]
        ok = [i for i, p in enumerate(full) if p.ok]
        if ok:
            want = np.asarray(self.reference.run(np.stack([prepared[i] for i in ok])), np.float32)
            scores = [dict(full[i].top) for i in ok]  # every label's score, exact float32
            got = np.array([[row[label] for label in labels] for row in scores], np.float32)
            self.tally.add(want, got, [truth[i] for i in ok])
        return [replace(p, top=p.top[:top_k]) for p in full]

    def agreement(self, precision: str) -> PrecisionAgreement:
        """The agreement of the classifier's engine at ``precision`` with fp32, so far."""
        return self.tally.result(precision, self.classifier.engine)
