"""Classification metrics in plain numpy: accuracy, confusion matrix, per-class P / R / F1.

Shared by ``edgecnn train`` (test-split report) and ``edgecnn eval`` (ONNX or Keras), so the
numbers users compare are computed one way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]`` as an int64 ``num_classes x num_classes`` matrix."""
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.size} entries, y_pred {pred.size}")
    for name, values in (("y_true", true), ("y_pred", pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} holds a class index outside 0..{num_classes - 1}")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix


def classification_report(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro averages, per-class precision / recall / F1 / support and the matrix.

    Classes never predicted get precision 0 (not NaN), as scikit-learn's ``zero_division=0``.
    """
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    total = int(matrix.sum())
    per_class = [
        {
            "label": label,
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    ]
    present = support > 0
    return {
        "images": total,
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": per_class,
        "labels": list(labels),
        "confusion_matrix": matrix.tolist(),
    }


def format_report(report: dict[str, Any]) -> str:
    """A terminal table: per-class rows sorted by F1 (worst last), then accuracy and matrix."""
    width = max([len("macro avg"), *(len(row["label"]) for row in report["per_class"])])
    lines = [f"{'class':<{width}}  precision  recall     f1  support"]
    for row in sorted(report["per_class"], key=lambda r: -r["f1"]):
        lines.append(
            f"{row['label']:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}"
            f"  {row['f1']:5.3f}  {row['support']:7d}"
        )
    lines.append(
        f"{'macro avg':<{width}}  {report['macro_precision']:9.3f}  {report['macro_recall']:6.3f}"
        f"  {report['macro_f1']:5.3f}  {report['images']:7d}"
    )
    lines.append(f"accuracy: {report['accuracy']:.4f} on {report['images']} images")
    lines += confusion_lines(report["labels"], report["confusion_matrix"], width)
    return "\n".join(lines)


def confusion_lines(
    labels: Sequence[str], matrix: Sequence[Sequence[int]], width: int, max_width: int = 100
) -> list[str]:
    """The confusion matrix as text, column headers never cut: whole labels when the table fits
    ``max_width`` columns, else numbered columns with the numbers in front of the row labels."""
    counts = max(len(str(v)) for row in matrix for v in row) if matrix else 1
    cell = max(counts, *(len(label) for label in labels))
    heads: list[str] = list(labels)
    names = list(labels)
    if width + 2 + (cell + 1) * len(labels) > max_width:
        heads = [str(i) for i in range(1, len(labels) + 1)]
        names = [f"{i} {label}" for i, label in enumerate(labels, 1)]
        cell = max(counts, len(heads[-1]) if heads else 1)
    name_width = max([width, *(len(n) for n in names)])
    lines = ["confusion matrix (rows: true, columns: predicted)"]
    lines.append(" " * (name_width + 2) + " ".join(f"{h:>{cell}}" for h in heads))
    for name, row in zip(names, matrix, strict=True):
        lines.append(f"{name:<{name_width}}  " + " ".join(f"{v:>{cell}}" for v in row))
    return lines
