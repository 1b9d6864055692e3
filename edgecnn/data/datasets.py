"""Image-folder datasets: discover, split reproducibly, inspect, and split on disk. No TensorFlow.

Two layouts are understood:

* split: ``DIR/train/<class>/*`` with optional ``DIR/validation/<class>/*`` (also ``val`` or
  ``valid``) and ``DIR/test/<class>/*``;
* flat: ``DIR/<class>/*``, split into train / validation (/ test) by ratios and a seed.

:func:`discover` reads a training dataset; :func:`find_images` reads one folder for calibration,
verification and ``edgecnn eval``. Both walk folders the same way (:func:`_class_files`) and
return every file they leave out with the reason, so a caller can report it.

Class order is the sorted folder names of the training split. Splits are stratified per class
and seeded per class name, so adding a class never reshuffles the others, and the same files +
the same seed always give the same split.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import DatasetError, ImageError
from edgecnn.image_files import NOT_AN_IMAGE, is_hidden, is_image_or_unreadable, walk
from edgecnn.preprocess import MAX_FILE_BYTES, decode
from edgecnn.spec import InputSpec
from edgecnn.tools.machine import available_cores
from edgecnn.user_files import UnusableFile, check_regular, open_regular, read_head

#: An image file and its class (the class folder's name), or None outside class folders.
Labelled = tuple[Path, str | None]
SPLITS = ("train", "validation", "test")
IMAGE_FORMATS = "JPEG, PNG, BMP, WebP, GIF, TIFF, PNM, JPEG 2000, EXR, HDR"
_SPLIT_ALIASES = {
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
    split_dirs = {
        _SPLIT_ALIASES[n.lower()]: p for n, p in top.items() if n.lower() in _SPLIT_ALIASES
    }
    if "train" in split_dirs:
        layout = "split"
        extra = sorted(n for n in top if n.lower() not in _SPLIT_ALIASES)
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


def split_indices(n: int, ratios: Sequence[float], seed: int, key: str = "") -> list[np.ndarray]:
    """Shuffle ``range(n)`` with a generator seeded by (seed, key) and cut it by ratios.

    Counts use largest remainders; a split with a positive ratio gets at least one item when
    the first split can spare one, so a small class still appears in validation.
    """
    ratios = check_ratios(ratios)
    exact = np.array(ratios) * n
    sizes = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - sizes), kind="stable")[: n - sizes.sum()]:
        sizes[i] += 1
    for i in range(1, len(sizes)):
        if ratios[i] > 0 and sizes[i] == 0 and sizes[0] > 1:
            sizes[i] += 1
            sizes[0] -= 1
    rng = np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])
    order = rng.permutation(n)
    return np.split(order, np.cumsum(sizes)[:-1])


def check_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
    """Validate train/validation[/test] ratios: 1-3 non-negative numbers adding up to 1."""
    values = tuple(float(r) for r in ratios)
    if not 1 <= len(values) <= 3:
        raise DatasetError(f"expected 2 or 3 ratios (train,validation[,test]), got {len(values)}")
    if any(r < 0 or r > 1 for r in values):
        raise DatasetError(f"ratios {','.join(f'{r:g}' for r in values)} must lie in 0..1")
    if abs(sum(values) - 1.0) > 1e-6:
        raise DatasetError(
            f"ratios {','.join(f'{r:g}' for r in values)} add up to {sum(values):g}, not 1"
        )
    if values[0] <= 0:
        raise DatasetError("the train ratio must be positive")
    return values


def parse_ratios(text: str) -> tuple[float, ...]:
    """Parse ``"0.7,0.15,0.15"`` (or percentages ``"70,15,15"``) into checked ratios."""
    try:
        values = [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise DatasetError(f"ratios {text!r} are not comma-separated numbers") from None
    if values and sum(values) > 1.5:  # percentages
        values = [v / 100 for v in values]
    return check_ratios(values)


def resolve_splits(
    dataset: Dataset, val_split: float = 0.2, test_split: float = 0.0, seed: int = 42
) -> dict[str, list[tuple[Path, int]]]:
    """(path, class index) lists for train / validation / test.

    A split layout uses its folders, carving validation out of train by ``val_split`` only if
    there is no validation folder. A flat layout is cut by ``val_split`` and ``test_split``.
    """
    if not 0 <= val_split < 1 or not 0 <= test_split < 1 or val_split + test_split >= 1:
        raise DatasetError(
            f"`val_split` {val_split:g} and `test_split` {test_split:g} must be in 0..1 and "
            "leave images for training"
        )
    out: dict[str, list[tuple[Path, int]]] = {s: [] for s in SPLITS}
    if dataset.layout == "split":
        carve = "validation" not in dataset.files
        for index, label in enumerate(dataset.labels):
            train = dataset.files["train"][label]
            if carve and val_split > 0:
                parts = split_indices(len(train), (1 - val_split, val_split), seed, label)
                out["train"] += [(train[i], index) for i in sorted(parts[0])]
                out["validation"] += [(train[i], index) for i in sorted(parts[1])]
            else:
                out["train"] += [(p, index) for p in train]
            for split in ("validation", "test"):
                out[split] += [(p, index) for p in dataset.files.get(split, {}).get(label, [])]
    else:
        ratios = (1 - val_split - test_split, val_split, test_split)
        for index, label in enumerate(dataset.labels):
            paths = dataset.files["all"][label]
            for split, part in zip(
                SPLITS, split_indices(len(paths), ratios, seed, label), strict=True
            ):
                out[split] += [(paths[i], index) for i in sorted(part)]
    return out


# --- inspect ------------------------------------------------------------------------------------


def _png_depth(path: Path) -> int | None:
    """Bit depth from a PNG's IHDR (Pillow hides 16-bit RGB), None if not a PNG."""
    head = read_head(path, 26)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 26:
        return None
    return struct.unpack("B", head[24:25])[0]


def _probe(path: Path) -> dict[str, Any]:
    """Size, mode and decodability of one image file (header + a reduced decode)."""
    from PIL import Image

    info: dict[str, Any] = {"path": str(path)}
    try:  # a FIFO or a link to /dev/zero must not hang or flood the probe
        check_regular(path, MAX_FILE_BYTES)
    except UnusableFile as exc:
        info["error"] = exc.reason
        return info
    try:
        with Image.open(path) as im:
            info["width"], info["height"] = im.size
            info["mode"] = im.mode
    except Exception:  # Pillow cannot parse the header; the decode below decides
        pass
    depth = _png_depth(path)
    if depth is not None:
        info["bits"] = depth
    try:
        decoded = decode(path, InputSpec(16, 16))
        if "width" not in info:
            info["height"], info["width"] = decoded.shape[:2]
    except ImageError as exc:
        info["error"] = exc.reason
    return info


def _anomaly(info: dict[str, Any]) -> str | None:
    mode = info.get("mode")
    if info.get("bits", 8) == 16 or (mode and (mode.startswith("I;16") or mode == "I")):
        return "16-bit"
    return {
        "L": "grayscale",
        "LA": "grayscale+alpha",
        "1": "1-bit",
        "P": "palette",
        "PA": "palette+alpha",
        "RGBA": "RGBA",
        "CMYK": "CMYK",
        "F": "float",
    }.get(mode or "")


def inspect(
    data_dir: str | Path,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Counts per split per class, imbalance, sizes, colour anomalies and unreadable files.

    Every file is probed (header + reduced decode) in a thread pool; nothing raises for a bad
    file, it is listed instead.
    """
    dataset = discover(data_dir)
    jobs = [
        (split, label, path)
        for split, by_label in dataset.files.items()
        for label, paths in by_label.items()
        for path in paths
    ]
    with ThreadPoolExecutor(max_workers=workers or available_cores()) as pool:
        infos = []
        for done, info in enumerate(pool.map(lambda j: _probe(j[2]), jobs), start=1):
            infos.append(info)
            if progress is not None:
                progress(done, len(jobs))
    sizes: Counter[str] = Counter()
    anomalies: dict[str, list[str]] = {}
    unreadable = []
    for info in infos:
        if "error" in info:
            unreadable.append({"path": info["path"], "reason": info["error"]})
            continue
        sizes[f"{info['width']}x{info['height']}"] += 1
        kind = _anomaly(info)
        if kind:
            anomalies.setdefault(kind, []).append(info["path"])
    counts = dataset.counts()
    main = counts["train" if dataset.layout == "split" else "all"]
    largest, smallest = max(main.values()), min(main.values())
    return {
        "root": str(dataset.root),
        "layout": dataset.layout,
        "labels": list(dataset.labels),
        "counts": counts,
        "images": len(jobs),
        "imbalance": {
            "largest": largest,
            "smallest": smallest,
            "ratio": round(largest / smallest, 3) if smallest else None,
            "imbalanced": smallest == 0 or largest / smallest > 1.5,
        },
        "sizes": dict(sizes.most_common()),
        "anomalies": anomalies,
        "unreadable": unreadable,
        "ignored": [{"path": p, "reason": r} for p, r in dataset.ignored],
    }


def format_inspection(report: dict[str, Any], max_sizes: int = 8, max_paths: int = 5) -> str:
    """A terminal summary of :func:`inspect`'s report."""
    labels = report["labels"]
    splits = list(report["counts"])
    width = max(len("class"), *(len(lb) for lb in labels))
    lines = [
        f"{report['root']}: {report['layout']} layout, {len(labels)} classes, "
        f"{report['images']} images"
    ]
    lines.append(f"{'class':<{width}}  " + "  ".join(f"{s:>10}" for s in splits))
    for label in labels:
        row = "  ".join(f"{report['counts'][s].get(label, 0):>10}" for s in splits)
        lines.append(f"{label:<{width}}  {row}")
    imb = report["imbalance"]
    flag = "  <- imbalanced" if imb["imbalanced"] else ""
    lines.append(f"imbalance: largest/smallest class = {imb['largest']}/{imb['smallest']}{flag}")
    sizes = list(report["sizes"].items())
    lines.append(f"image sizes (WxH, {len(sizes)} distinct):")
    for size, n in sizes[:max_sizes]:
        lines.append(f"  {size:>12}  {n}")
    if len(sizes) > max_sizes:
        lines.append(f"  ... {len(sizes) - max_sizes} more")
    for kind, paths in report["anomalies"].items():
        lines.append(f"{kind}: {len(paths)} image(s), converted when loaded, e.g. {paths[0]}")
    if report["unreadable"]:
        lines.append(f"unreadable: {len(report['unreadable'])} file(s), skipped by training:")
        lines += [f"  {u['path']}: {u['reason']}" for u in report["unreadable"][:max_paths]]
    if report["ignored"]:
        lines.append(
            f"ignored: {len(report['ignored'])} non-image file(s), e.g. "
            f"{report['ignored'][0]['path']}"
        )
    return "\n".join(lines)


# --- split on disk ------------------------------------------------------------------------------


def check_destination_layout(dst: str | Path, split: bool) -> None:
    """Refuse to write a flat dataset into a split one (class folders beside ``train/``) or a
    split one into a flat one: the mixed folder is neither layout, so ``inspect`` and ``train``
    would fail on it later. Adding images to an existing layout of the same kind is fine."""
    root = Path(dst)
    if not root.is_dir():
        return
    folders = [p.name for p in root.iterdir() if p.is_dir() and not is_hidden(p.name)]
    splits = sorted(n for n in folders if n.lower() in _SPLIT_ALIASES)
    classes = sorted(n for n in folders if n.lower() not in _SPLIT_ALIASES)
    if not split and splits:
        raise DatasetError(
            f"{root}: already a split dataset ({', '.join(n + '/' for n in splits)}); class "
            "folders written beside them would make it unreadable; choose an empty folder"
        )
    if split and classes:
        raise DatasetError(
            f"{root}: already holds class folders ({', '.join(classes[:4])}"
            f"{', ...' if len(classes) > 4 else ''}); train/validation/test written beside them "
            "would make it unreadable; choose an empty folder"
        )


def split_dataset(
    src: str | Path,
    dst: str | Path,
    ratios: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 42,
    *,
    link: bool = False,
    skipped: list[tuple[str, str]] | None = None,
) -> dict[str, dict[str, int]]:
    """Copy (or hard-link, falling back to symlinks) a flat dataset into dst/<split>/<class>/.

    Refuses before writing anything if a destination file exists or dst is inside src. Only
    regular files are copied or linked: pipes, devices and links to them (``/dev/zero`` would
    copy without end) are left out and appended to ``skipped`` as (path, reason).
    """
    values = check_ratios(ratios)
    dataset = discover(src)
    if dataset.layout != "flat":
        raise DatasetError(f"{src}: already split into train/ ...; split needs DIR/<class>/")
    src_root, dst_root = Path(src).resolve(), Path(dst).resolve()
    if dst_root == src_root or src_root in dst_root.parents:
        raise DatasetError(f"{dst}: the destination must not be inside the source {src}")
    check_destination_layout(dst, split=True)
    names = SPLITS[: len(values)]
    plan: list[tuple[Path, Path]] = []
    counts: dict[str, dict[str, int]] = {s: {} for s in names if values[names.index(s)] > 0}
    for label in dataset.labels:
        paths = _regular_files(dataset.files["all"][label], skipped)
        for split, part in zip(names, split_indices(len(paths), values, seed, label), strict=True):
            if split in counts:
                counts[split][label] = len(part)
            for i in sorted(part):
                rel = paths[i].relative_to(dataset.root / label)
                plan.append((paths[i], dst_root / split / label / rel))
    clashes = [str(target) for _, target in plan if target.exists() or target.is_symlink()]
    if clashes:
        raise DatasetError(
            f"{dst}: {len(clashes)} file(s) already exist (e.g. {clashes[0]}); "
            "choose an empty destination"
        )
    for source, target in plan:
        target.parent.mkdir(parents=True, exist_ok=True)
        if link:
            try:
                os.link(source, target)
            except OSError:
                os.symlink(source.resolve(), target)
        else:
            _copy_regular(source, target)
    return counts


def _regular_files(paths: list[Path], skipped: list[tuple[str, str]] | None) -> list[Path]:
    kept = []
    for path in paths:
        try:
            check_regular(path)
        except UnusableFile as exc:
            if skipped is not None:
                skipped.append((str(path), exc.reason))
            continue
        kept.append(path)
    return kept


def _copy_regular(source: Path, target: Path) -> None:
    """Copy a file checked again on the open descriptor (it may have changed since)."""
    with open_regular(source, empty_ok=True) as fin, open(target, "xb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    shutil.copystat(source, target)
