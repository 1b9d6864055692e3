"""``--engine ray`` / ``edgecnn.scale``: the same rows as local classify, computed by Ray.

One local Ray instance (2 CPUs, small object store) serves the tests that need Ray; they and the
two-node cluster test (``ray.cluster_utils.Cluster``, every node on 127.0.0.1) are slow-marked
(starting Ray costs the fast suite ~40 s); what needs no running Ray stays fast. Real
onnxruntime sessions, real OpenCV decoding of real files, broken files included.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgecnn import Classifier, Foreign
from edgecnn.classify.result_files import columns
from edgecnn.cli import cli
from edgecnn.errors import EdgecnnError
from edgecnn.scale import ClassifyImages, classify_dataset, parse_actors
from edgecnn.scale.dataset_pipeline import default_prepare_threads, guess_prepare_batch
from edgecnn.scale.image_stage import prepare_images
from edgecnn.scale.inference_stage import EXTRA_COLUMNS
from edgecnn.scale.local_ray import decode_workers, warm_decode_workers, warm_up
from edgecnn.scale.result_output import check_output, output_kind
from edgecnn.spec import InputSpec
from tests.conftest import write_color_image
from tests.models import IR_VERSION, color_model, save

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

ROOT = str(Path(__file__).resolve().parent.parent)
#: lets Ray workers import ``tests`` (the crashing actor below) and the working tree's edgecnn
RUNTIME_ENV = {"env_vars": {"PYTHONPATH": ROOT}}


def make_inputs(folder: Path, count: int = 12) -> Path:
    """``count`` colour images in JPEG / PNG / BMP plus every kind of broken input."""
    folder.mkdir(parents=True)
    for i in range(count):
        color = ("red", "green", "blue")[i % 3]
        write_color_image(folder / f"{i:03d}_{color}.{('jpg', 'png', 'bmp')[i % 3]}", color)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image")
    whole = (folder / "000_red.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "folder.png").mkdir()  # a directory named like an image: a note, as locally
    (folder / ".hidden.jpg").write_bytes(whole)  # hidden files are not inputs
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scale")
    make_inputs(root / "images")
    save(color_model(), root / "color.onnx")
    return root


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module: 2 CPUs, an 80 MB object store."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        num_cpus=2,
        object_store_memory=80 * 1024 * 1024,
        include_dashboard=False,
        runtime_env=RUNTIME_ENV,
        logging_level="WARNING",
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def local_rows(model: Path, sources: list[str], top_k: int = 1) -> dict[str, tuple]:
    """What ``--engine local`` says per path: (status, label, error)."""
    classifier = Classifier.load(model, provider="cpu")
    return {
        p.source: ("ok" if p.ok else "error", p.label, p.error)
        for p in classifier.classify(sources, top_k=top_k)
    }


def by_path(rows: list[dict]) -> dict[str, tuple]:
    paths = [row["path"] for row in rows]
    assert len(paths) == len(set(paths)), "a path appears twice"
    return {row["path"]: (row["status"], row["label"], row["error"]) for row in rows}


# ------------------------------------------------------------------ no Ray needed


def test_parse_actors():
    assert parse_actors("3") == (3, 3)
    assert parse_actors("1:8") == (1, 8)
    assert parse_actors("2:") == (2, None)
    for bad in ("0", "4:2", "x", "1:y"):
        with pytest.raises(ValueError, match="actors"):
            parse_actors(bad)


def raw_model(path: Path) -> Path:
    """A 16x16 RGB model without metadata whose outputs are the mean colour (0..255): not
    probabilities, so its rows are errors that point to `` `logits` ``."""
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", 16, 16, 3])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])
    axes = numpy_helper.from_array(np.array([1, 2], np.int64), "axes")
    nodes = [
        helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x", "axes"], ["out"], keepdims=0),
    ]
    graph = helper.make_graph(nodes, "raw", [image], [out], [axes])
    opsets = [helper.make_opsetid("", 18)]
    return save(helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION), path)


def test_rows_name_parameters_as_the_caller_asks(tmp_path: Path):
    """The rows' errors name the API parameter (`` `logits` ``) unless the caller maps it (the
    CLI: ``--logits``, as local classify's rows say). The actor class runs without Ray here."""
    model = raw_model(tmp_path / "raw.onnx")
    write_color_image(tmp_path / "red.png", "red")
    batch = {"path": np.array([str(tmp_path / "red.png")]),
             "bytes": np.array([(tmp_path / "red.png").read_bytes()], dtype=object)}  # fmt: skip
    foreign = Foreign(["r", "g", "b"], (16, 16))
    for names, says in [(None, "run it with `logits`"), ({"logits": "--logits"}, "--logits")]:
        actor = ClassifyImages(str(model), provider="cpu", foreign=foreign, names=names)
        (error,) = actor(batch).column("error").to_pylist()
        assert error.endswith(says), error
        assert ("`" in error) == (names is None)
    assert not ray.is_initialized()  # the actor class outside Ray does not start one


def test_prepare_batch_follows_file_sizes(tmp_path: Path):
    """Decode tasks get ~32 MB of files: 1024 small images, 16 multi-megapixel photos."""
    photos, small = tmp_path / "photos" / "a", tmp_path / "small"
    photos.mkdir(parents=True)
    small.mkdir()
    for i in range(3):
        (photos / f"{i}.jpg").write_bytes(bytes(3 * 2**20))
        (small / f"{i}.jpg").write_bytes(bytes(5000))
    assert guess_prepare_batch([str(tmp_path / "photos")]) == 16  # found in a sub-folder
    assert guess_prepare_batch([str(photos / "*.jpg")]) == 16
    assert guess_prepare_batch([str(small), str(photos)]) == 1024  # the first source decides
    assert guess_prepare_batch([str(small / "0.jpg")]) == 1024
    (small / "1.jpg").write_bytes(bytes(2**20))
    (small / "2.jpg").write_bytes(bytes(2**20))
    assert guess_prepare_batch([str(small)]) == 32  # 32 MB / the median size
    assert guess_prepare_batch([str(tmp_path / "missing")]) == 1024
    assert guess_prepare_batch(["s3://bucket/photos"]) == 1024  # no listing requests for a guess


def test_warm_decode_workers_are_the_decode_tasks_that_fit():
    """Beside the actors, as many 0.25-CPU tasks as fit; at least one, at most two per CPU."""
    assert decode_workers(2, 1.0, 1, 0.25) == 4
    assert decode_workers(2, 1.0, 2, 0.25) == 1  # the actors take every CPU
    assert decode_workers(64, 1.0, 8, 0.25) == 128  # not 224: one process each
    assert decode_workers(8, 1.0, 2, 1.0) == 6


def test_decode_threads_give_the_rows_one_thread_gives(workspace: Path):
    """A decode task's threads change nothing in its output: same order, pixels, errors."""
    paths = sorted(str(p) for p in (workspace / "images").iterdir() if not p.is_dir())
    spec = InputSpec(16, 16, 3, "rgb", "crop", "area")
    one = prepare_images({"path": paths}, spec=spec)
    two = prepare_images({"path": paths}, spec=spec, threads=2)
    assert list(two["path"]) == paths and list(two["error"]) == list(one["error"])
    assert (two["image"] == one["image"]).all() and two["image"].any()
    assert sum(bool(e) for e in one["error"]) == 3  # empty, text, truncated
    assert default_prepare_threads(16) == 2  # photos: their batch was guessed small
    assert default_prepare_threads(1024) == 1  # small images: threads cost more than they give


def test_output_kind_and_checks(tmp_path: Path):
    assert output_kind("out") == "parquet"
    assert output_kind("s3://bucket/rows") == "parquet"
    assert output_kind("rows.csv") == "csv"
    assert output_kind("rows.jsonl") == "jsonl"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "part.parquet").write_bytes(b"x")
    with pytest.raises(EdgecnnError, match="holds results already; add to them with --resume"):
        check_output(str(tmp_path / "full"), "parquet", resume=False)
    with pytest.raises(EdgecnnError, match="needs a Parquet folder"):
        check_output(str(tmp_path / "rows.csv"), "csv", resume=True)
    with pytest.raises(EdgecnnError, match="does not exist"):
        check_output(str(tmp_path / "no" / "out"), "parquet", resume=False)


# ------------------------------------------------------------------ local Ray instance


@pytest.mark.slow  # needs the module's Ray instance (~10 s to start, more per test)
def test_rows_match_local_classify(local_ray, workspace: Path, monkeypatch):
    monkeypatch.chdir(workspace)  # relative sources are reported relative, as locally
    sources = ["images", "missing.jpg", "nothing-*.png"]
    dataset = classify_dataset(sources, "color.onnx", top_k=2, batch_size=4, prepare_batch=4)
    rows = dataset.take_all()
    expected = local_rows(workspace / "color.onnx", sources)
    assert by_path(rows) == expected  # one row per input; same statuses, labels, errors
    assert sum(status == "error" for status, _, _ in expected.values()) == 5
    assert expected["images/truncated.jpg"][2].startswith("truncated JPEG")
    digest = hashlib.sha256((workspace / "color.onnx").read_bytes()).hexdigest()
    assert {row["model_sha256"] for row in rows} == {digest}
    assert all(row["node"] for row in rows)
    # the provider the actor's engine really ran (auto resolves per batch size), not "auto"
    ran = Classifier.load(workspace / "color.onnx").provider
    assert ran != "auto" and {row["provider"] for row in rows} == {ran}
    ok = next(row for row in rows if row["status"] == "ok")
    assert list(ok) == [*columns(2), *EXTRA_COLUMNS]
    assert ok["inference_ms"] > 0 and ok["decode_ms"] > 0 and ok["score"] >= ok["score_2"]


@pytest.mark.slow  # needs the module's Ray instance (~10 s to start, more per test)
def test_decoding_stays_a_stage_of_its_own_without_deprecated_arguments(
    local_ray, workspace: Path, capsys
):
    """Equal CPUs for decode tasks and actors would let Ray fuse decoding into the actors;
    the plan keeps them apart, and building it warns about nothing (no deprecated args)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = classify_dataset(
            [str(workspace / "images")], str(workspace / "color.onnx"), prepare_cpus=1.0
        )
    assert [str(w.message) for w in caught if "ray_remote_args" in str(w.message)] == []
    capsys.readouterr()
    dataset.explain()
    physical = capsys.readouterr().out.split("Physical Plan (Optimized)")[-1]
    assert "TaskPoolMapOperator[MapBatches(prepare_images)]" in physical
    assert "ActorPoolMapOperator[MapBatches(ClassifyImages)]" in physical


@pytest.mark.slow  # needs the module's Ray instance (~10 s to start, more per test)
def test_warm_up_holds_one_process_per_decode_task(local_ray):
    """Each warm-up task waits for the others, so each ran in a process of its own; the run's
    warm-up fills the module's 2 CPUs beside one 1-CPU actor with 0.25-CPU tasks."""
    assert warm_decode_workers(3, 0.25) == 3
    assert warm_up(1, 1.0, 0.25) == 4


@pytest.mark.slow  # needs the module's Ray instance (~10 s to start, more per test)
def test_file_uris_are_listed_and_read_through_pyarrow(local_ray, workspace: Path):
    folder = (workspace / "images").as_uri()
    model = str(workspace / "color.onnx")
    rows = by_path(classify_dataset([folder, folder + "/nope.jpg"], model).take_all())
    local = local_rows(workspace / "color.onnx", [str(workspace / "images")])
    as_uris = {Path(path).as_uri(): value for path, value in local.items()}
    assert {path: rows[path] for path in as_uris} == as_uris
    assert rows[folder + "/000_red.jpg"][:2] == ("ok", "red")
    assert rows[folder + "/nope.jpg"] == ("error", None, "no such file or directory")
    assert len(rows) == len(as_uris) + 1
    reds = by_path(classify_dataset([folder + "/*_red.jpg"], model).take_all())
    assert sorted(reds) == [f"{folder}/{i:03d}_red.jpg" for i in (0, 3, 6, 9)]
    assert {value for value in reds.values()} == {("ok", "red", None)}


@pytest.mark.slow  # needs the module's Ray instance (~10 s to start, more per test)
def test_inference_class_in_a_users_own_pipeline(local_ray, workspace: Path):
    """ClassifyImages works on read_binary_files' rows (encoded bytes) with the model shipped
    as bytes through the object store."""
    images = sorted(str(p) for p in (workspace / "images").glob("0*"))
    dataset = ray.data.read_binary_files(images, include_paths=True)
    model = ray.put((workspace / "color.onnx").read_bytes())
    rows = dataset.map_batches(
        ClassifyImages,
        fn_constructor_kwargs={"model": model, "top_k": 3},
        batch_size=5,
        compute=ray.data.ActorPoolStrategy(size=1),
    ).take_all()
    assert len(rows) == len(images)
    for row in rows:
        truth = Path(row["path"]).stem.split("_")[1]
        assert (row["status"], row["label"]) == ("ok", truth)
        assert row["label_3"] is not None


@pytest.mark.slow  # needs the module's Ray instance (~10 s to start, more per test)
def test_a_dead_actor_is_retried_without_losing_or_duplicating_rows(local_ray, workspace: Path):
    marker = workspace / "crashed"

    class CrashOnce(ClassifyImages):  # defined here: Ray ships it by value, marker included
        def __call__(self, batch):
            if not marker.exists():
                marker.write_text("this actor's process dies now")
                os._exit(1)
            return super().__call__(batch)

    sources = [str(workspace / "images")]
    dataset = classify_dataset(
        sources, str(workspace / "color.onnx"), batch_size=3, prepare_batch=4, inference=CrashOnce
    )
    rows = dataset.take_all()
    assert marker.exists(), "the actor never crashed: the test proves nothing"
    assert by_path(rows) == local_rows(workspace / "color.onnx", sources)


@pytest.mark.slow  # needs the module's Ray instance (~10 s to start, more per test)
def test_cli_parquet_resume_and_csv(local_ray, workspace: Path, tmp_path: Path):
    images = workspace / "images"
    part = tmp_path / "part"
    part.mkdir()
    for name in ("000_red.jpg", "001_green.png", "text.jpg"):
        shutil.copy(images / name, part / name)
    out = tmp_path / "rows"
    runner = CliRunner()
    model = ["--model", str(workspace / "color.onnx")]
    args = ["classify", str(part), "--engine", "ray", "-o", str(out), "--prepare-batch", "2"]
    first = runner.invoke(cli, [*args, *model])
    assert first.exit_code == 0, first.output
    assert "2 ok, 1 failed" in first.output and "rows per node" in first.output
    again = runner.invoke(cli, ["classify", str(part), "--engine", "ray", "-o", str(out), *model])
    assert again.exit_code == 1 and "--resume" in again.output
    (out / "cut-short.parquet").write_bytes(b"PAR1 interrupted")  # an interrupted write
    args = ["classify", str(part), str(images), "--engine", "ray", "-o", str(out), "--resume"]
    second = runner.invoke(cli, [*args, *model])
    assert second.exit_code == 0, second.output
    assert (out / "_partial-cut-short.parquet").exists()
    rows = pq.read_table(out).to_pylist()
    expected = local_rows(workspace / "color.onnx", [str(part), str(images)])
    assert by_path(rows) == expected  # every input once, old rows kept, nothing twice

    csv_out = tmp_path / "rows.csv"
    args = ["classify", str(images), "--engine", "ray", "-o", str(csv_out), "-k", "2", *model]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    with open(csv_out, newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == [*columns(2), *EXTRA_COLUMNS]
        ray_rows = {
            r["path"]: (r["status"], r["label"] or None, r["error"] or None) for r in reader
        }
    assert ray_rows == local_rows(workspace / "color.onnx", [str(images)])


@pytest.mark.slow  # needs the module's Ray instance (~10 s to start, more per test)
def test_cli_rows_and_summary_name_the_logits_flag(local_ray, workspace: Path, tmp_path: Path):
    """As local classify: a model whose outputs are not probabilities gets error rows (and a
    summary) that say --logits, the flag, not the API's `` `logits` ``."""
    labels = tmp_path / "labels.txt"
    labels.write_text("red\ngreen\nblue\n")
    out = tmp_path / "rows.csv"
    result = CliRunner().invoke(cli, [
        "classify", str(workspace / "images" / "000_red.jpg"), "--engine", "ray", "-o", str(out),
        "--model", str(raw_model(tmp_path / "raw.onnx")), "--labels", str(labels),
        "--input-size", "16x16",
    ])  # fmt: skip
    assert result.exit_code == 1 and "nothing could be classified" in result.output
    with open(out, newline="") as fh:
        (row,) = csv.DictReader(fh)
    for text in (row["error"], result.output):
        assert "run it with --logits" in text and "`" not in text, text


@pytest.mark.slow  # starts a Ray instance of its own in the child process
def test_cli_piped_stderr_is_quiet_and_names_the_provider_that_ran(workspace: Path, tmp_path):
    """Through a real pipe: no Ray Data INFO log / progress block, and the summary names what
    the actors' engines ran (not the requested ``auto``)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a fresh local Ray
    env["PYTHONPATH"] = ROOT
    args = ["classify", str(workspace / "images"), "--engine", "ray", "-o", str(tmp_path / "r")]
    done = subprocess.run(
        [sys.executable, "-m", "edgecnn", *args, "--model", str(workspace / "color.onnx")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "12 ok, 3 failed" in done.stderr
    ran = Classifier.load(workspace / "color.onnx").provider
    assert f"provider {ran}; model " in done.stderr  # what ran, not "auto"
    for noise in ("\tINFO ", " INFO ", "Running Dataset", "Progress bars disabled"):
        assert noise not in done.stderr


def test_cli_refuses_local_only_and_ray_only_flags(workspace: Path):
    runner = CliRunner()
    result = runner.invoke(cli, ["classify", str(workspace / "images"), "--actors", "2"])
    assert result.exit_code == 2 and "--engine ray" in result.output
    result = runner.invoke(cli, ["classify", str(workspace / "images"), "--prepare-batch", "8"])
    assert result.exit_code == 2 and "--prepare-batch are for --engine ray" in result.output
    result = runner.invoke(cli, ["classify", str(workspace / "images"), "--engine", "ray"])
    assert result.exit_code == 2 and "-o OUT" in result.output


# ------------------------------------------------------------------ two-node cluster


@pytest.mark.slow
def test_two_node_cluster_rows_from_both_nodes(workspace: Path, tmp_path: Path, monkeypatch):
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    # Ray would publish this machine's network address; keep every connection on loopback.
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    started = tmp_path / "started"
    started.mkdir()

    class EveryActorComputes(ClassifyImages):  # Ray ships it by value, folder included
        """Placement is the product's (a custom resource each node has once); which actor gets
        a batch is Ray Data's (the least busy one, load-dependent). So each actor's first batch
        waits until both actors have one: an actor holds at most 2 batches, the cluster >= 3."""

        def __call__(self, batch):
            (started / str(os.getpid())).touch()
            deadline = time.monotonic() + 120  # fail, not hang, if one actor gets every batch
            while len(list(started.iterdir())) < 2:
                if time.monotonic() > deadline:
                    raise AssertionError("only one inference actor received batches")
                time.sleep(0.05)
            return super().__call__(batch)

    if ray.is_initialized():
        ray.shutdown()  # the module's local instance (if any) is restarted by its fixture user
    node = {
        "num_cpus": 2,
        "resources": {"edgecnn_actor": 1},  # one inference actor per node, whatever the load
        "node_ip_address": "127.0.0.1",
        "object_store_memory": 80 * 2**20,
    }
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        ray.init(address=cluster.address, runtime_env=RUNTIME_ENV, logging_level="WARNING")
        ray.data.DataContext.get_current().enable_progress_bars = False
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
        assert len(ray.nodes()) == 2
        sources = [str(workspace / "images"), str(workspace / "missing.jpg")]
        dataset = classify_dataset(
            sources,
            str(workspace / "color.onnx"),
            batch_size=2,
            prepare_batch=2,
            actors=(2, 2),
            actor_resources={"edgecnn_actor": 1},
            inference=EveryActorComputes,
        )
        out = tmp_path / "rows"
        dataset.write_parquet(str(out))
        rows = pq.read_table(out).to_pylist()
        assert by_path(rows) == local_rows(workspace / "color.onnx", sources)
        assert {row["node"] for row in rows} == {n["NodeID"] for n in ray.nodes()}
    finally:
        ray.shutdown()
        cluster.shutdown()
