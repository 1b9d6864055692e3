"""A procedurally generated shapes dataset (OpenCV only), for tests, demos and benchmarks.

No dataset can be downloaded where edgecnn is developed, so this module draws one: circles,
squares, triangles and stars, filled or outlined, crisp or hand-drawn (jittered vertices, wobbly
strokes of varied thickness), on paper-like, plain, gradient, textured or cluttered backgrounds,
then applies mild perspective, uneven lighting, blur, sensor noise and JPEG artefacts. The aim
is that a model trained on it recognises the same shapes drawn with a marker on paper in front
of a webcam. Every size parameter is relative to the image, so drawing a 4000x2700 "photo" for
a benchmark looks like a 96x96 thumbnail, only sharper.

Each image gets its own random generator seeded from ``(seed, class, index)``, so a dataset is
reproducible whatever the number of worker threads.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from edgecnn.data.dataset_splits import check_ratios
from edgecnn.data.datasets import SPLITS
from edgecnn.data.split_on_disk import check_destination_layout
from edgecnn.errors import DatasetError
from edgecnn.tools.machine import available_cores

#: The classes, in sorted order (the order training will give them).
SHAPE_LABELS: tuple[str, ...] = ("circle", "square", "star", "triangle")
FORMATS = ("jpg", "png")

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT


def draw_shape(
    label: str, size: tuple[int, int] = (128, 128), rng: np.random.Generator | None = None
) -> np.ndarray:
    """Draw one random ``label`` image of ``size`` (height, width) as uint8 BGR ``HxWx3``."""
    if label not in SHAPE_LABELS:
        raise ValueError(f"unknown shape {label!r}; choose from {', '.join(SHAPE_LABELS)}")
    height, width = int(size[0]), int(size[1])
    if height < 8 or width < 8:
        raise ValueError(f"size {height}x{width} is too small (at least 8x8)")
    rng = rng if rng is not None else np.random.default_rng()
    image, ink_base = _background(rng, height, width)
    scale = min(height, width)
    radius = scale * rng.uniform(0.2, 0.42)
    margin = radius * 1.05
    cx = rng.uniform(margin, width - margin) if width > 2 * margin else width / 2
    cy = rng.uniform(margin, height - margin) if height > 2 * margin else height / 2
    color = _ink_color(rng, ink_base)
    _draw_outline_or_fill(image, label, (cx, cy), radius, color, rng)
    if rng.random() < 0.3:
        _distractor_marks(image, rng, (cx, cy), radius, ink_base)
    return _camera_effects(image, rng)


def generate_shapes(
    dst: str | Path,
    per_class: int,
    size: tuple[int, int] = (128, 128),
    seed: int = 0,
    fmt: str = "jpg",
    *,
    ratios: tuple[float, ...] | None = None,
    labels: tuple[str, ...] = SHAPE_LABELS,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, dict[str, int]]:
    """Write ``per_class`` images per shape under ``dst``; return counts ``{split: {label: n}}``.

    Without ``ratios`` the layout is flat (``dst/<label>/``, split "all"); with ratios
    (train, validation[, test]) it is ``dst/<split>/<label>/``. Refuses to overwrite files.
    """
    if per_class < 1:
        raise DatasetError(f"`per_class` must be at least 1, not {per_class}")
    if fmt not in FORMATS:
        raise DatasetError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    unknown = [x for x in labels if x not in SHAPE_LABELS]
    if unknown:
        raise DatasetError(f"unknown shape(s) {', '.join(unknown)}")
    root = Path(dst)
    check_destination_layout(root, split=ratios is not None)
    splits = _split_names(per_class, ratios)
    jobs = []
    for ci, label in enumerate(labels):
        for i, split in enumerate(splits):
            folder = root / label if ratios is None else root / split / label
            jobs.append((ci, i, label, split, folder / f"{label}_{i:05d}.{fmt}"))
    existing = [str(job[4]) for job in jobs if job[4].exists()]
    if existing:
        raise DatasetError(
            f"{root}: {len(existing)} file(s) would be overwritten (e.g. {existing[0]}); "
            "choose an empty destination"
        )
    for folder in {job[4].parent for job in jobs}:
        folder.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if fmt == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]

    def work(job: tuple[int, int, str, str, Path]) -> None:
        ci, i, label, _, path = job
        rng = np.random.default_rng([seed, ci, i])
        ok, buf = cv2.imencode(f".{fmt}", draw_shape(label, size, rng), params)
        if not ok:
            raise DatasetError(f"{path}: OpenCV could not encode the image")
        path.write_bytes(buf.tobytes())

    counts: dict[str, dict[str, int]] = {}
    with ThreadPoolExecutor(max_workers=workers or available_cores()) as pool:
        for done, job in enumerate(pool.map(work, jobs), start=1):
            del job
            if progress is not None:
                progress(done, len(jobs))
    for _, _, label, split, _ in jobs:
        counts.setdefault(split if ratios is not None else "all", {}).setdefault(label, 0)
        counts[split if ratios is not None else "all"][label] += 1
    return counts


def _split_names(n: int, ratios: tuple[float, ...] | None) -> list[str]:
    """Split name for each of n images (by index: images are independent draws)."""
    if ratios is None:
        return ["all"] * n
    bounds = np.round(np.cumsum(check_ratios(ratios)) * n).astype(int)
    return [SPLITS[int(np.searchsorted(bounds, i, side="right"))] for i in range(n)]


# --- backgrounds -------------------------------------------------------------------------------


def _background(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, float]:
    """A background and its typical luminance (so the ink can contrast with it)."""
    kind = rng.choice(
        ["paper", "paper", "paper_on_desk", "plain", "gradient", "texture", "clutter"]
    )
    if kind in ("paper", "paper_on_desk"):
        image = _paper(rng, h, w)
        if kind == "paper_on_desk":
            image = _paper_on_desk(rng, image)
    elif kind == "plain":
        image = np.empty((h, w, 3), np.uint8)
        image[:] = rng.integers(0, 256, 3)
    elif kind == "gradient":
        image = _gradient(rng, h, w, rng.integers(0, 256, 3), rng.integers(0, 256, 3))
    elif kind == "texture":
        image = _texture(rng, h, w)
    else:
        image = _texture(rng, h, w)
        _clutter(image, rng)
    return image, float(image.mean())


def _gradient(
    rng: np.random.Generator, h: int, w: int, c0: np.ndarray, c1: np.ndarray
) -> np.ndarray:
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.ogrid[0:h, 0:w]
    t = (xs / max(w - 1, 1)) * math.cos(angle) + (ys / max(h - 1, 1)) * math.sin(angle)
    t = ((t - t.min()) / max(float(t.max() - t.min()), 1e-6)).astype(np.float32)
    c0, c1 = c0.astype(np.float32), c1.astype(np.float32)
    out = c0[None, None, :] + t[..., None] * (c1 - c0)[None, None, :]
    return out.astype(np.uint8)


def _low_freq_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth float32 noise in [-1, 1] (random grid upscaled), cheap at any size."""
    gh, gw = max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w))
    grid = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _paper(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """White-ish paper with a tint, uneven lighting, grain and sometimes ruled or grid lines."""
    base = rng.uniform(185, 252)
    tint = rng.uniform(-12, 12, 3) + np.array([-rng.uniform(0, 15), 0, rng.uniform(0, 8)])
    light = 1.0 + 0.12 * _low_freq_noise(rng, h, w, 3) + _gradient_field(rng, h, w, 0.18)
    image = (base + tint[None, None, :]) * light[..., None]
    image = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < 0.35:
        _ruled_lines(image, rng)
    return image


def _gradient_field(rng: np.random.Generator, h: int, w: int, strength: float) -> np.ndarray:
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.ogrid[0:h, 0:w]
    t = (xs / max(w, 1) - 0.5) * math.cos(angle) + (ys / max(h, 1) - 0.5) * math.sin(angle)
    return (t * rng.uniform(-strength, strength) * 2).astype(np.float32)


def _ruled_lines(image: np.ndarray, rng: np.random.Generator) -> None:
    """Notebook lines (blue/grey, sometimes a grid) drawn faintly across the paper."""
    h, w = image.shape[:2]
    step = max(4, int(min(h, w) * rng.uniform(0.06, 0.14)))
    color = tuple(int(c) for c in rng.choice([[200, 170, 140], [170, 170, 170], [210, 190, 160]]))
    thick = max(1, min(h, w) // 300)
    offset = int(rng.integers(0, step))
    for y in range(offset, h, step):
        cv2.line(image, (0, y), (w - 1, y), color, thick, cv2.LINE_AA)
    if rng.random() < 0.4:
        for x in range(offset, w, step):
            cv2.line(image, (x, 0), (x, h - 1), color, thick, cv2.LINE_AA)


def _paper_on_desk(rng: np.random.Generator, paper: np.ndarray) -> np.ndarray:
    """A sheet of paper seen by a camera: a quadrilateral of paper over a darker desk."""
    h, w = paper.shape[:2]
    desk = _texture(rng, h, w, dark=True)
    m = 0.12
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-m, m, (4, 2)) * np.float32([w, h])
    # Push the sheet's corners outwards so the shape (drawn near the centre) stays on paper.
    dst = src + jitter + np.float32([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * np.float32([w, h]) * m
    mtx = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warped = cv2.warpPerspective(paper, mtx, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), mtx, (w, h))
    desk[mask > 127] = warped[mask > 127]
    return desk


def _texture(rng: np.random.Generator, h: int, w: int, dark: bool = False) -> np.ndarray:
    """Coloured low-frequency texture (wood, fabric, a wall) at any size."""
    c0 = rng.integers(0, 140 if dark else 256, 3).astype(np.float32)
    c1 = rng.integers(0, 140 if dark else 256, 3).astype(np.float32)
    t = (_low_freq_noise(rng, h, w, int(rng.integers(3, 12))) + 1) / 2
    if rng.random() < 0.4:  # streaks like wood grain
        streak = _low_freq_noise(rng, max(h // 8, 2), w, 40)
        t = np.clip(t + 0.25 * cv2.resize(streak, (w, h)), 0, 1)
    image = c0[None, None, :] + t[..., None] * (c1 - c0)[None, None, :]
    return image.astype(np.uint8)


def _clutter(image: np.ndarray, rng: np.random.Generator) -> None:
    """Lines, scribbles and text-like marks that are none of the shapes, in muted colours."""
    h, w = image.shape[:2]
    scale = min(h, w)
    for _ in range(int(rng.integers(2, 8))):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        thick = max(1, int(scale * rng.uniform(0.004, 0.02)))
        kind = rng.random()
        if kind < 0.5:
            p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(image, p0, p1, color, thick, cv2.LINE_AA)
        elif kind < 0.8:
            n = int(rng.integers(3, 7))
            pts = rng.uniform(0, 1, (n, 2)) * np.float32([w, h])
            cv2.polylines(image, [pts.astype(np.int32)], False, color, thick, cv2.LINE_AA)
        else:
            org = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            font_scale = scale / 300 * rng.uniform(0.5, 1.5)
            text = "".join(rng.choice(list("abcdefghkmnprstuvxz0123456789"), 4))
            cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, font_scale, color, thick)


# --- the shapes ---------------------------------------------------------------------------------


def _ink_color(rng: np.random.Generator, background_luma: float) -> tuple[int, int, int]:
    """A marker / paint colour that differs clearly from the background."""
    for _ in range(20):
        if background_luma > 150 and rng.random() < 0.6:  # markers on paper
            base = np.array(
                rng.choice(
                    [[20, 20, 20], [150, 40, 20], [30, 30, 180], [40, 120, 30], [90, 20, 90]]
                )
            )
            color = np.clip(base + rng.integers(-20, 21, 3), 0, 255)
        else:
            color = rng.integers(0, 256, 3)
        luma = 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2]
        if abs(luma - background_luma) > 60:
            return int(color[0]), int(color[1]), int(color[2])
    return (0, 0, 0) if background_luma > 127 else (255, 255, 255)


def _outline(label: str, rng: np.random.Generator, hand: bool) -> list[np.ndarray]:
    """Closed unit-radius outline(s) of the shape, centred at 0, unrotated."""
    if label == "circle":
        aspect = rng.uniform(0.85, 1.15)
        t = np.linspace(0, 2 * math.pi, 72, endpoint=False)
        pts = np.stack([np.cos(t) * aspect, np.sin(t) / aspect], axis=1)
        if hand:  # low-frequency radius wobble, like a circle drawn freehand
            wobble = sum(
                rng.uniform(-0.05, 0.05) * np.cos(k * t + rng.uniform(0, 6.3)) for k in (2, 3)
            )
            pts *= (1 + wobble)[:, None]
        return [pts]
    if label == "square":
        aspect = rng.uniform(0.85, 1.18)
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * 0.78
        pts[:, 0] *= aspect
        pts[:, 1] /= aspect
    elif label == "triangle":
        angles = -math.pi / 2 + np.array([0, 2, 4]) * math.pi / 3 + rng.uniform(-0.3, 0.3, 3)
        radii = rng.uniform(0.9, 1.05, 3)
        pts = np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
        pts[:, 1] += 0.15  # centre the area, not the circumcircle
    else:  # star
        points = 5 if rng.random() < 0.85 else 6
        if hand and points == 5 and rng.random() < 0.5:  # one-stroke pentagram, lines crossing
            t = -math.pi / 2 + np.arange(5) * 4 * math.pi / 5
            pts = np.stack([np.cos(t), np.sin(t)], axis=1)
            return [pts + rng.normal(0, 0.05, pts.shape)]
        inner = rng.uniform(0.38, 0.55)
        t = -math.pi / 2 + np.arange(2 * points) * math.pi / points
        r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
        pts = np.stack([np.cos(t) * r, np.sin(t) * r], axis=1)
    if hand:
        pts = pts + rng.normal(0, 0.045, pts.shape)
    return [pts]


def _wobbly(pts: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Resample a closed polygon densely and bend its edges a little, like a hand stroke."""
    closed = np.vstack([pts, pts[:1]])
    dense = []
    for a, b in itertools.pairwise(closed):
        n = max(2, int(np.linalg.norm(b - a) * 24))
        s = np.linspace(0, 1, n, endpoint=False)[:, None]
        normal = np.array([-(b - a)[1], (b - a)[0]]) / (np.linalg.norm(b - a) + 1e-9)
        bend = rng.uniform(-amount, amount) * np.sin(math.pi * s)
        dense.append(a + s * (b - a) + bend * normal)
    out = np.vstack(dense)
    # close with a small overshoot or gap, as pens rarely meet exactly
    extra = int(len(out) * rng.uniform(-0.03, 0.05))
    return out[: len(out) + extra] if extra < 0 else np.vstack([out, out[:extra]])


def _draw_outline_or_fill(
    image: np.ndarray,
    label: str,
    center: tuple[float, float],
    radius: float,
    color: tuple[int, int, int],
    rng: np.random.Generator,
) -> None:
    style = rng.choice(["filled", "outline", "hand", "hand", "filled_outlined"])
    hand = style == "hand" or (style != "filled" and rng.random() < 0.3)
    angle = rng.uniform(0, 2 * math.pi)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    thickness = max(1, round(radius * rng.uniform(0.03, 0.16)))
    for unit in _outline(label, rng, hand):
        pts = _wobbly(unit, rng, 0.04) if hand else unit
        xy = pts @ rot.T * radius + np.array(center)
        fixed = [np.round(xy * _ONE).astype(np.int32)]
        if style in ("filled", "filled_outlined"):
            cv2.fillPoly(image, fixed, color, cv2.LINE_AA, _SHIFT)
            if style == "filled_outlined":
                edge = tuple(int(c) for c in rng.integers(0, 256, 3))
                cv2.polylines(image, fixed, True, edge, thickness, cv2.LINE_AA, _SHIFT)
        else:
            cv2.polylines(image, fixed, not hand, color, thickness, cv2.LINE_AA, _SHIFT)
            if hand and rng.random() < 0.25:  # retraced stroke, slightly offset
                offset = rng.normal(0, radius * 0.02, 2)
                again = [np.round((xy + offset) * _ONE).astype(np.int32)]
                cv2.polylines(
                    image, again, False, color, max(1, thickness // 2), cv2.LINE_AA, _SHIFT
                )


def _distractor_marks(
    image: np.ndarray,
    rng: np.random.Generator,
    center: tuple[float, float],
    radius: float,
    background_luma: float,
) -> None:
    """A few small pen marks away from the shape (a corner doodle, a word), not shapes."""
    h, w = image.shape[:2]
    color = _ink_color(rng, background_luma)
    thick = max(1, round(min(h, w) * 0.006))
    for _ in range(int(rng.integers(1, 3))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        if math.hypot(x - center[0], y - center[1]) < radius * 1.3:
            continue
        n = int(rng.integers(2, 5))
        pts = np.array([x, y]) + rng.normal(0, min(h, w) * 0.04, (n, 2))
        cv2.polylines(image, [pts.astype(np.int32)], False, color, thick, cv2.LINE_AA)


# --- camera -------------------------------------------------------------------------------------


def _camera_effects(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mild perspective, uneven light, blur, sensor noise and JPEG artefacts."""
    h, w = image.shape[:2]
    scale = min(h, w)
    if rng.random() < 0.6:
        m = 0.06
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = (src + rng.uniform(-m, m, (4, 2)) * np.float32([w, h])).astype(np.float32)
        mtx = cv2.getPerspectiveTransform(src, dst)
        image = cv2.warpPerspective(image, mtx, (w, h), borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < 0.5:  # shadow / vignette
        light = 1.0 + _gradient_field(rng, h, w, 0.25) + 0.08 * _low_freq_noise(rng, h, w, 2)
        image = np.clip(image * light[..., None], 0, 255).astype(np.uint8)
    blur = rng.random()
    if blur < 0.45:
        sigma = scale * rng.uniform(0.002, 0.012)
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    elif blur < 0.55:  # motion blur
        k = max(3, int(scale * rng.uniform(0.01, 0.04)) | 1)
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (k, k))
        image = cv2.filter2D(image, -1, kernel / max(float(kernel.sum()), 1e-6))
    sigma = rng.uniform(0, 12)
    if sigma > 1:
        noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        quality = int(rng.integers(25, 85))
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(image)
