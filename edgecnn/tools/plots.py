"""Plotting helpers shared by train, eval and bench: matplotlib (Agg, no display) imported only
when a picture is asked for, and the confusion-matrix picture."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import MissingDependencyError
from edgecnn.tools.report_files import writing


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or a MissingDependencyError naming the extra."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "plot") from exc
    return plt


def integer_ticks() -> Any:
    """A tick locator that puts ticks on whole numbers only (epochs, batch counts)."""
    pyplot()
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def save(fig: Any, path: str | Path, dpi: int = 110) -> None:
    """Save ``fig`` as a PNG (an unwritable path is an EdgecnnError) and free it."""
    plt = pyplot()
    try:
        with writing(path, "PNG"):
            fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)


def confusion_matrix(
    path: str | Path, matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str
) -> None:
    """Rows true, columns predicted; colours row-normalised (recall), counts in the cells."""
    plt = pyplot()
    counts = np.asarray(matrix)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    side = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (i, j), value in np.ndenumerate(counts):
        colour = "white" if share[i, j] > 0.5 else "black"
        ax.text(j, i, str(value), ha="center", va="center", color=colour)
    fig.tight_layout()
    save(fig, path, dpi=120)
