"""``dataset split``: a flat dataset copied (or linked) into ``train/validation/test``
folders, and the layout check for any folder a dataset is written into (also the shapes set)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from edgecnn.data.dataset_splits import check_ratios, split_indices
from edgecnn.data.datasets import SPLIT_ALIASES, SPLITS, discover
from edgecnn.errors import DatasetError
from edgecnn.image_files import is_hidden
from edgecnn.user_files import UnusableFile, check_regular, open_regular


def check_destination_layout(dst: str | Path, split: bool) -> None:
    """Refuse to write a flat dataset into a split one (class folders beside ``train/``) or a
    split one into a flat one: the mixed folder is neither layout, so ``inspect`` and ``train``
    would fail on it later. Adding images to an existing layout of the same kind is fine."""
    root = Path(dst)
    if not root.is_dir():
        return
    folders = [p.name for p in root.iterdir() if p.is_dir() and not is_hidden(p.name)]
    splits = sorted(n for n in folders if n.lower() in SPLIT_ALIASES)
    classes = sorted(n for n in folders if n.lower() not in SPLIT_ALIASES)
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
