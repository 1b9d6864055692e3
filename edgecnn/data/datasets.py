"""Image-folder datasets: discover, split reproducibly, inspect, and split on disk. No TensorFlow.

Two layouts are understood:

* split: ``DIR/train/<class>/*`` with optional ``DIR/validation/<class>/*`` (also ``val`` or
  ``valid``) and ``DIR/test/<class>/*``;
* flat: ``DIR/<class>/*``, split into train / validation (/ test) by ratios and a seed.

:func:`discover` reads a training dataset; :func:`find_images` reads one folder for calibration,
verification and ``edgecnn eval``. Both walk folders the same way (:func:`_class_files`) and
return every file they leave out with the reason, so a caller can report it.

Class order is the sorted folder names of the training split. Beside this module:
``dataset_splits`` (ratios and the seeded split), ``dataset_inspection`` (``dataset inspect``)
and ``split_on_disk`` (``dataset split``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgecnn.errors import DatasetError
from edgecnn.image_files import NOT_AN_IMAGE, is_hidden, is_image_or_unreadable, walk

#: An image file and its class (the class folder's name), or None outside class folders.
Labelled = tuple[Path, str | None]
SPLITS = ("train", "validation", "test")
IMAGE_FORMATS = "JPEG, PNG, BMP, WebP, GIF, TIFF, PNM, JPEG 2000, EXR, HDR"
SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "test": "test",
}


@dataclass
class Dataset:
    """A discovered dataset: its classes and image files per split, plus files left out."""

    root: Path
    layout: str  # "split" or "flat"
    labels: tuple[str, ...]
    files: dict[str, dict[str, list[Path]]]  # split ("all" when flat) -> label -> sorted paths
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per split per class."""
        return {s: {lb: len(p) for lb, p in by.items()} for s, by in self.files.items()}


def _class_files(folder: Path, ignored: list[tuple[str, str]]) -> list[Path]:
    """Image files under a class folder (recursively, each once), sorted; other files go to
    ``ignored``. Images are recognised by content (:func:`edgecnn.image_files.is_image`)."""
    found = walk(folder, recursive=True)
    ignored += found.errors
    images = []
    for path in found.files:
        if is_image_or_unreadable(path):
            images.append(path)
        else:
            ignored.append((str(path), NOT_AN_IMAGE))
    return sorted(images)


def _class_dirs(folder: Path, ignored: list[tuple[str, str]]) -> dict[str, Path]:
    dirs = {}
    for entry in sorted(folder.iterdir()):
        if is_hidden(entry.name):
            continue
        if entry.is_dir():
            dirs[entry.name] = entry
        else:
            ignored.append((str(entry), "file outside any class folder"))
    return dirs


def discover(data_dir: str | Path) -> Dataset:
    """Find the layout, the classes and the image files of a dataset folder.

    Raises DatasetError for a missing folder, no class folders, fewer than two classes or a
    class folder without images, each with a message that says what to fix.
    """
    root = Path(data_dir)
    if not root.exists():
        raise DatasetError(f"{root}: dataset folder does not exist")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (expected DIR/<class>/ or DIR/train/<class>/)")
    ignored: list[tuple[str, str]] = []
    top = _class_dirs(root, ignored)
    split_dirs = {SPLIT_ALIASES[n.lower()]: p for n, p in top.items() if n.lower() in SPLIT_ALIASES}
    if "train" in split_dirs:
        layout = "split"
        extra = sorted(n for n in top if n.lower() not in SPLIT_ALIASES)
        if extra:
            raise DatasetError(
                f"{root}: has a train/ folder and also {', '.join(extra)}; a split dataset "
                "holds only train/, validation/ and test/"
            )
        per_split = {s: _class_dirs(split_dirs[s], ignored) for s in SPLITS if s in split_dirs}
    else:
        layout = "flat"
        per_split = {"all": top}
    main = "train" if layout == "split" else "all"
    labels = tuple(sorted(per_split[main]))
    where = split_dirs["train"] if layout == "split" else root
    if not labels:
        raise DatasetError(
            f"{where}: no class folders found (expected one sub-folder of images per class)"
        )
    if len(labels) < 2:
        raise DatasetError(
            f"{where}: only one class folder ({labels[0]}); a classifier needs at least two"
        )
    files: dict[str, dict[str, list[Path]]] = {}
    for split, dirs in per_split.items():
        unknown = sorted(set(dirs) - set(labels))
        if unknown:
            raise DatasetError(
                f"{split_dirs[split]}: class folder(s) {', '.join(unknown)} do not exist in "
                "train/; every class must have training images"
            )
        files[split] = {lb: _class_files(dirs[lb], ignored) if lb in dirs else [] for lb in labels}
    empty = [lb for lb, paths in files[main].items() if not paths]
    if empty:
        raise DatasetError(
            f"{where}: class folder(s) {', '.join(empty)} hold no images "
            f"(recognised by content: {IMAGE_FORMATS}); add images or remove them"
        )
    return Dataset(root=root, layout=layout, labels=labels, files=files, ignored=ignored)


@dataclass
class ImageFiles:
    """What :func:`find_images` found: the folder read, its images, and the files left out."""

    folder: Path
    images: list[Labelled]
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def pick_split(root: Path, prefer: Sequence[str]) -> Path:
    """``root/<split>`` for the first preferred split that exists as a folder, else ``root``."""
    for name in prefer:
        if (root / name).is_dir():
            return root / name
    return root


def find_images(
    folder: str | Path, prefer: Sequence[str] = (), labels: Sequence[str] | None = None
) -> ImageFiles:
    """Every image file under ``folder`` (or its first existing ``prefer`` split sub-folder).

    Immediate sub-folders are classes (``<class>/**/*``); images directly inside are unlabelled
    (label None), as are class folders not in ``labels`` when it is given. Files whose content is
    not an image go to ``ignored``. Raises DatasetError for a missing folder or one without images.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(
            f"{root}: image folder does not exist" if not root.exists() else f"{root}: not a folder"
        )
    base = pick_split(root, prefer)
    known = None if labels is None else set(labels)
    images: list[Labelled] = []
    ignored: list[tuple[str, str]] = []
    for entry in sorted(base.iterdir()):
        if is_hidden(entry.name):
            continue
        if entry.is_dir():
            label = entry.name if known is None or entry.name in known else None
            images += [(path, label) for path in _class_files(entry, ignored)]
        elif is_image_or_unreadable(entry):
            images.append((entry, None))
        else:
            ignored.append((str(entry), NOT_AN_IMAGE))
    if not images:
        extra = f" ({len(ignored)} other file(s))" if ignored else ""
        raise DatasetError(f"{base}: no image files{extra}; expected {IMAGE_FORMATS} images")
    return ImageFiles(base, images, ignored)
