"""What a training run leaves for people: history.csv, history.png, report.json and the
confusion-matrix picture. matplotlib is imported lazily with the Agg backend (no display)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HISTORY_COLUMNS = (
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "seconds",
)


def write_history_csv(path: Path, rows: Sequence[dict[str, float]]) -> None:
    """One row per epoch with the columns of :data:`HISTORY_COLUMNS`."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in HISTORY_COLUMNS})


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_history(path: Path, rows: Sequence[dict[str, float]], title: str) -> None:
    """Loss and accuracy curves, train vs validation, best validation epoch marked."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, [r.get(metric) for r in rows], "o-", label="train", markersize=3)
        if any("val_" + metric in r for r in rows):
            ax.plot(
                epochs,
                [r.get("val_" + metric) for r in rows],
                "o-",
                label="validation",
                markersize=3,
            )
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_confusion(path: Path, matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> None:
    """Confusion matrix (rows true, columns predicted), counts in the cells."""
    plt = _pyplot()
    m = np.asarray(matrix)
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    limit = m.max() / 2 if m.size else 0
    for (i, j), value in np.ndenumerate(m):
        ax.text(
            j, i, str(value), ha="center", va="center", color="white" if value > limit else "black"
        )
    ax.set_title(f"test accuracy {np.trace(m) / max(m.sum(), 1):.3f}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_json(path: Path, data: Any) -> None:
    """Pretty JSON, UTF-8, trailing newline."""
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
