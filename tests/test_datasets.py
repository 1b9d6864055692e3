"""Dataset discovery, reproducible splits, inspection and on-disk splitting (no TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn.cli import cli
from edgecnn.data.dataset_inspection import inspect
from edgecnn.data.dataset_splits import check_ratios, parse_ratios, resolve_splits, split_indices
from edgecnn.data.datasets import discover, find_images
from edgecnn.data.split_on_disk import split_dataset
from edgecnn.errors import DatasetError


def write_image(path: Path, kind: str = "rgb", size: tuple[int, int] = (24, 32)) -> Path:
    """Write a small test image of a given kind (rgb jpg, gray, rgba, 16-bit png, corrupt)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    rng = np.random.default_rng(len(str(path)))
    if kind == "corrupt":
        path.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
        return path
    if kind == "gray":
        image = rng.integers(0, 256, (h, w), np.uint8)
    elif kind == "rgba":
        image = rng.integers(0, 256, (h, w, 4), np.uint8)
    elif kind == "16bit":
        image = rng.integers(0, 65536, (h, w, 3), np.uint16)
    else:
        image = rng.integers(0, 256, (h, w, 3), np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


@pytest.fixture
def flat(tmp_path: Path) -> Path:
    """A flat dataset: 3 classes x 10 RGB images, plus junk files."""
    root = tmp_path / "flat"
    for label in ("b_cat", "a_dog", "c_cow"):
        for i in range(10):
            write_image(root / label / f"{i:02d}.jpg")
    (root / "a_dog" / "notes.txt").write_text("not an image")
    (root / ".DS_Store").write_bytes(b"junk")
    return root


def test_discover_flat_sorts_classes_and_lists_ignored(flat: Path) -> None:
    ds = discover(flat)
    assert ds.layout == "flat"
    assert ds.labels == ("a_dog", "b_cat", "c_cow")
    assert ds.counts() == {"all": {"a_dog": 10, "b_cat": 10, "c_cow": 10}}
    assert [Path(p).name for p, _ in ds.ignored] == ["notes.txt"]


def test_find_images_shares_discovery_and_lists_what_it_leaves_out(flat: Path) -> None:
    (flat / "loose.jfif").write_bytes((flat / "a_dog" / "00.jpg").read_bytes())
    found = find_images(flat, prefer=("test",), labels=("a_dog", "b_cat"))
    assert found.folder == flat  # no test/ sub-folder
    assert len(found.images) == 31
    labels = {label for _, label in found.images}
    assert labels == {"a_dog", "b_cat", None}  # c_cow is not a label given: unlabelled
    assert (flat / "loose.jfif", None) in found.images
    assert [Path(p).name for p, _ in found.ignored] == ["notes.txt"]
    assert discover(flat).files["all"]["a_dog"] == [
        p for p, label in found.images if label == "a_dog"
    ]


def test_discover_split_layout(tmp_path: Path) -> None:
    for split, n in (("train", 4), ("val", 2), ("test", 1)):
        for label in ("x", "y"):
            for i in range(n):
                write_image(tmp_path / split / label / f"{i}.png")
    ds = discover(tmp_path)
    assert ds.layout == "split"
    assert set(ds.files) == {"train", "validation", "test"}
    splits = resolve_splits(ds, val_split=0.5, seed=1)
    assert len(splits["train"]) == 8  # validation/ exists: nothing carved from train
    assert len(splits["validation"]) == 4
    assert len(splits["test"]) == 2


def test_split_layout_without_validation_carves_it(tmp_path: Path) -> None:
    for label in ("x", "y"):
        for i in range(10):
            write_image(tmp_path / "train" / label / f"{i}.png")
    splits = resolve_splits(discover(tmp_path), val_split=0.2, seed=3)
    assert len(splits["train"]) == 16 and len(splits["validation"]) == 4


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "no class folders"),
        (lambda root: write_image(root / "only" / "a.jpg"), "only one class"),
        (lambda root: (write_image(root / "a" / "1.jpg"), (root / "b").mkdir()), "hold no images"),
        (
            lambda root: (
                write_image(root / "a" / "1.jpg"),
                (root / "b").mkdir(),
                (root / "b" / "x.txt").write_text("x"),
            ),
            "hold no images",
        ),
    ],
    ids=["missing", "empty", "single-class", "empty-class", "only-non-images"],
)
def test_discover_bad_inputs(tmp_path: Path, make, message: str) -> None:
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DatasetError, match=message):
        discover(root)


def test_class_only_in_validation_is_an_error(tmp_path: Path) -> None:
    for label in ("x", "y"):
        write_image(tmp_path / "train" / label / "1.png")
    write_image(tmp_path / "validation" / "z" / "1.png")
    with pytest.raises(DatasetError, match="z do not exist in train"):
        discover(tmp_path)


def test_split_is_reproducible_stratified_and_seed_dependent(flat: Path) -> None:
    ds = discover(flat)
    a = resolve_splits(ds, val_split=0.3, seed=7)
    b = resolve_splits(ds, val_split=0.3, seed=7)
    c = resolve_splits(ds, val_split=0.3, seed=8)
    assert a == b
    assert a["validation"] != c["validation"]
    assert len(a["validation"]) == 9  # 3 per class
    assert sorted({t for _, t in a["validation"]}) == [0, 1, 2]
    assert not {p for p, _ in a["train"]} & {p for p, _ in a["validation"]}


def test_split_of_one_class_does_not_depend_on_other_classes(flat: Path, tmp_path: Path) -> None:
    before = resolve_splits(discover(flat), val_split=0.3, seed=7)
    for i in range(5):
        write_image(flat / "d_new" / f"{i}.jpg")
    after = resolve_splits(discover(flat), val_split=0.3, seed=7)
    dogs = [p for p, t in before["validation"] if t == 0]
    assert dogs == [p for p, t in after["validation"] if t == 0]


def test_split_indices_sizes_and_small_classes() -> None:
    parts = split_indices(10, (0.7, 0.15, 0.15), seed=0, key="k")
    assert [len(p) for p in parts] == [7, 2, 1] or [len(p) for p in parts] == [7, 1, 2]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    assert [len(p) for p in split_indices(3, (0.9, 0.1), seed=0)] == [2, 1]


@pytest.mark.parametrize(
    "bad", [(0.5, 0.2), (0.7, 0.3, 0.3), (1.2, -0.2), (0.0, 1.0), (float("nan"), 0.5, 0.5)]
)
def test_bad_ratios(bad: tuple[float, ...]) -> None:
    with pytest.raises(DatasetError):
        check_ratios(bad)


@pytest.mark.parametrize(
    ("ratios", "val_split", "test_split"),
    [((0.0, 1.0), 1.0, 0.0), ((0.5, 0.2), 0.5, 0.5), ((float("nan"), 0.5, 0.5), float("nan"), 0)],
)
def test_one_ratio_check_for_split_parse_shapes_and_train(
    tmp_path: Path, ratios: tuple[float, ...], val_split: float, test_split: float
) -> None:
    """The same rule refuses the same ratios wherever they enter: parsed text, the on-disk
    split, the shapes generator and train's val_split / test_split."""
    from edgecnn.data.shapes import generate_shapes

    text = ",".join(f"{r:g}" for r in ratios)
    flat = tmp_path / "flat"
    for label in ("a", "b"):
        write_image(flat / label / "x.jpg")
    with pytest.raises(DatasetError):
        parse_ratios(text)
    with pytest.raises(DatasetError):
        split_dataset(flat, tmp_path / "out", ratios)
    with pytest.raises(DatasetError):
        generate_shapes(tmp_path / "shapes", 2, (16, 16), ratios=ratios)
    with pytest.raises(DatasetError, match="val_split"):
        resolve_splits(discover(flat), val_split, test_split)
    assert not (tmp_path / "out").exists() and not (tmp_path / "shapes").exists()


def test_parse_ratios_accepts_percentages() -> None:
    assert parse_ratios("70,15,15") == pytest.approx((0.7, 0.15, 0.15))
    with pytest.raises(DatasetError, match="add up to"):
        parse_ratios("0.5,0.2")
    with pytest.raises(DatasetError, match="not comma-separated"):
        parse_ratios("a,b")


def test_inspect_reports_anomalies_sizes_and_unreadable(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    for i in range(4):
        write_image(root / "a" / f"{i}.jpg", size=(24, 32))
        write_image(root / "b" / f"{i}.jpg", size=(48, 64))
    write_image(root / "a" / "gray.png", "gray")
    write_image(root / "a" / "alpha.png", "rgba")
    write_image(root / "b" / "deep.png", "16bit")
    write_image(root / "b" / "broken.jpg", "corrupt")
    (root / "b" / "readme.md").write_text("hi")
    report = inspect(root)
    assert report["counts"] == {"all": {"a": 6, "b": 6}}
    assert report["sizes"]["32x24"] == 7  # 4 jpg + gray + rgba + 16-bit are 32x24 by default
    assert report["sizes"]["64x48"] == 4
    assert [Path(p).name for p in report["anomalies"]["grayscale"]] == ["gray.png"]
    assert [Path(p).name for p in report["anomalies"]["RGBA"]] == ["alpha.png"]
    assert [Path(p).name for p in report["anomalies"]["16-bit"]] == ["deep.png"]
    assert [Path(u["path"]).name for u in report["unreadable"]] == ["broken.jpg"]
    assert [Path(u["path"]).name for u in report["ignored"]] == ["readme.md"]
    assert "imbalanced" in report["imbalance"]


def test_split_dataset_copies_and_refuses_overwrite(flat: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    counts = split_dataset(flat, dst, (0.6, 0.2, 0.2), seed=1)
    assert counts["train"] == {"a_dog": 6, "b_cat": 6, "c_cow": 6}
    files = sorted(p.relative_to(dst) for p in dst.rglob("*.jpg"))
    assert len(files) == 30
    assert len({p.name + p.parts[1] for p in files}) == 30  # each source image exactly once
    assert discover(dst).layout == "split"
    with pytest.raises(DatasetError, match="already exist"):
        split_dataset(flat, dst, (0.6, 0.2, 0.2), seed=1)
    other = tmp_path / "out2"
    split_dataset(flat, other, (0.6, 0.2, 0.2), seed=1)
    assert sorted(p.relative_to(other) for p in other.rglob("*.jpg")) == files


def test_split_dataset_link_and_bad_destination(flat: Path, tmp_path: Path) -> None:
    dst = tmp_path / "linked"
    split_dataset(flat, dst, (0.8, 0.2), seed=0, link=True)
    linked = next((dst / "train" / "a_dog").glob("*.jpg"))
    assert linked.read_bytes() == (flat / "a_dog" / linked.name).read_bytes()
    assert not (dst / "test").exists()
    with pytest.raises(DatasetError, match="inside the source"):
        split_dataset(flat, flat / "sub", (0.8, 0.2))
    with pytest.raises(DatasetError, match="already split"):
        split_dataset(dst, tmp_path / "again", (0.8, 0.2))


def test_cli_inspect_and_split(flat: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["dataset", "inspect", str(flat)])
    assert result.exit_code == 0, result.output
    assert "3 classes, 30 images" in result.output and "a_dog" in result.output
    as_json = runner.invoke(cli, ["dataset", "inspect", str(flat), "--json"])
    assert json.loads(as_json.output)["labels"] == ["a_dog", "b_cat", "c_cow"]
    missing = runner.invoke(cli, ["dataset", "inspect", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    dst = tmp_path / "split"
    ok = runner.invoke(cli, ["dataset", "split", str(flat), str(dst), "--ratios", "0.8,0.1,0.1"])
    assert ok.exit_code == 0, ok.output
    assert (dst / "validation" / "c_cow").is_dir()
    bad = runner.invoke(
        cli, ["dataset", "split", str(flat), str(tmp_path / "s2"), "--ratios", "0.8,0.1"]
    )
    assert bad.exit_code == 1 and "add up to" in bad.output
    clash = runner.invoke(cli, ["dataset", "split", str(flat), str(dst)])
    assert clash.exit_code == 1 and "already exist" in clash.output


# --- one walker, one definition of "image" (shared with classify) --------------------------------


def test_a_symlink_loop_lists_an_image_once_and_in_one_split(tmp_path: Path) -> None:
    """One image beside a link to its own folder once became 41 entries of its class."""
    from edgecnn.classify.input_discovery import scan

    for label in ("a", "b"):
        for i in range(5):
            write_image(tmp_path / label / f"{i}.png")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a", target_is_directory=True)
    (tmp_path / "a" / "again.png").symlink_to(tmp_path / "a" / "0.png")  # one file, two names
    dataset = discover(tmp_path)
    assert [p.name for p in dataset.files["all"]["a"]] == [
        "0.png",
        "1.png",
        "2.png",
        "3.png",
        "4.png",
    ]
    splits = resolve_splits(dataset, val_split=0.4, seed=1)
    train = {p for p, _ in splits["train"]}
    assert not train & {p for p, _ in splits["validation"]}
    assert len(train) + len(splits["validation"]) == 10
    found = scan([str(tmp_path / "a")], recursive=True)  # classify walks the same way
    assert sorted(Path(i.source).name for i in found.items) == [
        "0.png",
        "1.png",
        "2.png",
        "3.png",
        "4.png",
    ]
    assert any("symbolic-link loop" in note for note in found.notes)


def test_images_are_recognised_by_content_not_name(tmp_path: Path) -> None:
    from edgecnn.image_files import NOT_AN_IMAGE

    for label in ("a", "b"):
        write_image(tmp_path / label / "real.png")
    write_image(tmp_path / "photo.png").rename(tmp_path / "a" / "photo.data")  # a PNG by content
    (tmp_path / "b" / "fake.jpg").write_text("not a picture")
    dataset = discover(tmp_path)
    assert [p.name for p in dataset.files["all"]["a"]] == ["photo.data", "real.png"]
    assert [p.name for p in dataset.files["all"]["b"]] == ["real.png"]
    assert dataset.ignored == [(str(tmp_path / "b" / "fake.jpg"), NOT_AN_IMAGE)]
