"""``dataset inspect``: counts per split and class, imbalance, image sizes, colour anomalies and
unreadable files of a dataset folder (every file probed; nothing raises for a bad file)."""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from edgecnn.data.datasets import discover
from edgecnn.errors import ImageError
from edgecnn.preprocess import MAX_FILE_BYTES, decode
from edgecnn.spec import InputSpec
from edgecnn.tools.machine import available_cores
from edgecnn.user_files import UnusableFile, check_regular, read_head


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
