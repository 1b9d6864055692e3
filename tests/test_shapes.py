"""The generated shapes dataset: images are valid, varied, reproducible and scale to photo size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn.cli import cli
from edgecnn.data.shapes import SHAPE_LABELS, draw_shape, generate_shapes
from edgecnn.errors import DatasetError


@pytest.mark.parametrize("label", SHAPE_LABELS)
def test_draw_shape_returns_bgr_uint8_of_requested_size(label: str) -> None:
    image = draw_shape(label, (72, 100), np.random.default_rng(1))
    assert image.shape == (72, 100, 3)
    assert image.dtype == np.uint8
    assert image.flags["C_CONTIGUOUS"]
    assert image.std() > 5  # not a blank canvas


def test_draw_shape_is_reproducible_and_varied() -> None:
    a = draw_shape("star", (64, 64), np.random.default_rng(5))
    b = draw_shape("star", (64, 64), np.random.default_rng(5))
    c = draw_shape("star", (64, 64), np.random.default_rng(6))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    means = [draw_shape("circle", (48, 48), np.random.default_rng(i)).mean() for i in range(12)]
    assert np.std(means) > 10  # backgrounds differ a lot


def test_draw_shape_scales_to_photo_size() -> None:
    image = draw_shape("triangle", (2700, 4000), np.random.default_rng(3))
    assert image.shape == (2700, 4000, 3)


def test_draw_shape_rejects_unknown_label_and_tiny_size() -> None:
    with pytest.raises(ValueError, match="unknown shape"):
        draw_shape("hexagon", (64, 64))
    with pytest.raises(ValueError, match="too small"):
        draw_shape("circle", (4, 4))


def test_generate_flat_dataset(tmp_path) -> None:
    counts = generate_shapes(tmp_path / "s", 3, (40, 40), seed=1, fmt="png")
    assert counts == {"all": dict.fromkeys(SHAPE_LABELS, 3)}
    for label in SHAPE_LABELS:
        files = sorted((tmp_path / "s" / label).glob("*.png"))
        assert len(files) == 3
        assert cv2.imread(str(files[0])).shape == (40, 40, 3)


def test_generate_is_reproducible(tmp_path) -> None:
    generate_shapes(tmp_path / "a", 2, (32, 32), seed=9, fmt="png", workers=1)
    generate_shapes(tmp_path / "b", 2, (32, 32), seed=9, fmt="png", workers=2)
    for path in (tmp_path / "a").rglob("*.png"):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()


def test_generate_split_layout(tmp_path) -> None:
    counts = generate_shapes(tmp_path / "s", 10, (32, 32), seed=0, ratios=(0.6, 0.2, 0.2))
    assert counts["train"]["circle"] == 6
    assert counts["validation"]["star"] == 2
    assert counts["test"]["triangle"] == 2
    assert len(list((tmp_path / "s" / "test" / "square").glob("*.jpg"))) == 2


def test_generate_refuses_to_overwrite(tmp_path) -> None:
    generate_shapes(tmp_path / "s", 1, (32, 32))
    with pytest.raises(DatasetError, match="overwritten"):
        generate_shapes(tmp_path / "s", 1, (32, 32))


def test_cli_shapes(tmp_path) -> None:
    runner = CliRunner()
    dst = tmp_path / "shapes"
    result = runner.invoke(
        cli,
        ["dataset", "shapes", str(dst), "--per-class", "2", "--size", "48x64", "--format", "png"],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 8 images" in result.output
    assert cv2.imread(str(next((dst / "star").glob("*.png")))).shape == (48, 64, 3)
    again = runner.invoke(
        cli,
        ["dataset", "shapes", str(dst), "--per-class", "2", "--size", "48x64", "--format", "png"],
    )
    assert again.exit_code == 1
    assert "Error:" in again.output and "overwritten" in again.output
    bad = runner.invoke(cli, ["dataset", "shapes", str(tmp_path / "x"), "--size", "big"])
    assert bad.exit_code == 1
    assert "not HxW" in bad.output
