"""`edgecnn serve`: a real server in a subprocess on a free loopback port, real models, real
HTTP. One server (three models, an API key, small limits) is shared by most tests; the SIGTERM
test starts its own. No test asserts a wall-clock limit or a speed. Three outcomes depend on when
requests arrive and are written to hold on a loaded machine: concurrent requests share batches
(fewer batches than requests), a full queue refuses one more request (the attempt is repeated
up to 10 times: still the least robust test here under heavy load), and a stalled upload is
answered 408 once the server's --timeout (8 s) has passed."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import helper, numpy_helper
from prometheus_client.parser import text_string_to_metric_families

from edgecnn.classify.result_files import columns
from edgecnn.cli import cli
from edgecnn.client import Client, ServerError
from edgecnn.preprocess import load_image
from edgecnn.runtime.classifier import default_model_path
from edgecnn.serve.server import binds_all_interfaces
from edgecnn.spec import InputSpec
from tests.conftest import write_color_image
from tests.models import IR_VERSION, color_model, save
from tests.test_preprocess import jpeg_header_claiming, png_header_claiming

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "images"
KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_QUEUE = 8


def slow_model(path: Path, size: int = 768, steps: int = 10) -> Path:
    """A red/green/blue model that also multiplies ``size``x``size`` matrices ``steps`` times
    (a few hundred ms per batch): requests stay in flight long enough to observe."""
    model = color_model()
    graph = model.graph
    ones = np.full((size, size), 1.0 / size, np.float32)  # idempotent: values stay bounded
    graph.initializer.append(numpy_helper.from_array(ones, "slow_a"))
    graph.initializer.append(numpy_helper.from_array(np.array(0.0, np.float32), "slow_zero"))
    nodes = [helper.make_node("ReduceMean", ["x"], ["slow_s"], keepdims=0)]  # depends on input
    nodes.append(helper.make_node("Mul", ["slow_a", "slow_s"], ["slow_0"]))
    for i in range(steps):
        nodes.append(helper.make_node("MatMul", [f"slow_{i}", "slow_a"], [f"slow_{i + 1}"]))
    nodes += [
        helper.make_node("ReduceSum", [f"slow_{steps}"], ["slow_sum"], keepdims=0),
        helper.make_node("Mul", ["slow_sum", "slow_zero"], ["slow_nothing"]),
        helper.make_node("Add", ["logits", "slow_nothing"], ["slow_logits"]),
    ]
    softmax = next(n for n in graph.node if n.op_type == "Softmax")
    softmax.input[0] = "slow_logits"
    index = list(graph.node).index(softmax)
    for offset, node in enumerate(nodes):
        graph.node.insert(index + offset, node)
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return save(model, path)


class Server:
    """`python -m edgecnn serve --port 0 ...` in a subprocess; its URL read from stderr."""

    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "edgecnn", "serve", "--port", "0", *args]
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                break
        else:
            raise AssertionError("the server did not start:\n" + "".join(self.log))
        self.host, port = self.url.removeprefix("http://").split(":")
        self.port = int(port)
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve")
    key = folder / "key.txt"
    key.write_text(KEY + "\n")
    color = save(color_model(), folder / "color.onnx")
    slow = slow_model(folder / "slow.onnx")
    running = Server(
        str(default_model_path("cpu")),
        f"color={color}",
        f"slow={slow}",
        "--provider", "cpu",
        "--api-key-file", str(key),
        "--max-queue", str(MAX_QUEUE),
        "--workers", "1",
        "--max-body-mb", "1",
    )  # fmt: skip
    yield running
    assert running.stop() == 0, "".join(running.log)


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
        yield client


def jpeg(path: Path) -> bytes:
    return path.read_bytes()


def color_png(color: str, tmp_path: Path) -> bytes:
    return write_color_image(tmp_path / f"{color}.png", color).read_bytes()


def metrics(http: httpx.Client) -> dict[tuple[str, tuple], float]:
    answer = http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def metric(values: dict, name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


# --------------------------------------------------------------------------- v1 classify
def test_classify_raw_body_gives_a_classify_row(http):
    answer = http.post(
        "/v1/classify?top_k=2", content=jpeg(SAMPLES / "star-1.jpg"),
        headers={"Content-Type": "image/jpeg"},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "shapes-int8"
    (row,) = body["results"]
    assert list(row) == columns(2)
    assert (row["status"], row["label"], row["error"]) == ("ok", "star", None)
    assert row["score"] >= row["score_2"] and row["label_2"] != "star"
    assert all(row[f"{s}_ms"] >= 0 for s in ("decode", "preprocess", "inference", "postprocess"))


def test_classify_several_multipart_files_in_order(http):
    names = ["circle-1.jpg", "square-2.jpg", "triangle-1.jpg"]
    files = [("file", (n, jpeg(SAMPLES / n), "image/jpeg")) for n in names]
    answer = http.post("/v1/models/shapes-int8/classify", files=files)
    assert answer.status_code == 200, answer.text
    rows = answer.json()["results"]
    assert [r["path"] for r in rows] == names
    assert [r["label"] for r in rows] == ["circle", "square", "triangle"]


def test_models_are_served_by_name(http, tmp_path):
    answer = http.post(
        "/v1/models/color/classify", content=color_png("green", tmp_path),
        headers={"Content-Type": "image/png"},
    )  # fmt: skip
    assert answer.json()["results"][0]["label"] == "green"
    listed = http.get("/v1/models").json()
    assert listed["default"] == "shapes-int8"
    assert [m["name"] for m in listed["models"]] == ["shapes-int8", "color", "slow"]
    assert listed["models"][1]["labels"] == ["red", "green", "blue"]
    missing = http.post(
        "/v1/models/nope/classify", content=b"x", headers={"Content-Type": "image/png"}
    )
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_concurrent_requests_share_batches(http, server, tmp_path):
    data = color_png("blue", tmp_path)
    before = metrics(http)

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as c:
            return c.post(
                "/v1/models/slow/classify", content=data, headers={"Content-Type": "image/png"}
            )

    with ThreadPoolExecutor(MAX_QUEUE) as pool:
        answers = list(pool.map(post, range(MAX_QUEUE)))
    assert [a.status_code for a in answers] == [200] * MAX_QUEUE
    assert {a.json()["results"][0]["label"] for a in answers} == {"blue"}
    after = metrics(http)
    images = metric(after, "edgecnn_batch_size_sum", model="slow") - metric(
        before, "edgecnn_batch_size_sum", model="slow"
    )
    batches = metric(after, "edgecnn_batch_size_count", model="slow") - metric(
        before, "edgecnn_batch_size_count", model="slow"
    )
    assert images == MAX_QUEUE
    assert batches < MAX_QUEUE  # requests that arrived during a batch shared the next one


# --------------------------------------------------------------------------- bad uploads
GOOD = (SAMPLES / "circle-1.jpg").read_bytes()


@pytest.mark.parametrize(
    ("content", "content_type", "status", "message"),
    [
        (b"", "image/jpeg", 422, "0 bytes"),
        (GOOD[: len(GOOD) // 2], "image/jpeg", 422, "truncated JPEG"),
        (b"just some text, not a picture\n" * 20, "image/jpeg", 422, "not an image"),
        (png_header_claiming(50000, 50000), "image/png", 422, "refused"),
        (jpeg_header_claiming(50000, 50000), "image/jpeg", 422, "refused"),
        (GOOD, "text/plain", 415, "not an image"),
        (GOOD, "application/json", 415, "not an image"),
        (GOOD, None, 415, "Content-Type none"),
        (b"--xyz\r\nnot really multipart", "multipart/form-data; boundary=xyz", 400, "multipart"),
        (GOOD, "multipart/form-data", 400, "multipart"),
        (b"x" * (1024 * 1024 + 1), "image/jpeg", 413, "limit"),
    ],
    ids=[
        "zero-bytes", "truncated", "text", "png-50000x50000", "jpeg-50000x50000", "text-plain",
        "json", "no-content-type", "bad-multipart", "no-boundary", "too-large",
    ],
)  # fmt: skip
def test_bad_upload_gets_a_4xx_json_error_and_the_server_keeps_serving(
    http, content, content_type, status, message
):
    headers = {"Content-Type": content_type} if content_type else {}
    answer = http.post("/v1/classify", content=content, headers=headers)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert message in body["error"] and body["kind"]
    if status == 422:
        assert body["results"][0]["status"] == "error"
    good = http.post("/v1/classify", content=GOOD, headers={"Content-Type": "image/jpeg"})
    assert good.status_code == 200 and good.json()["results"][0]["label"] == "circle"


def test_multipart_rules(http):
    mixed = [
        ("file", ("good.jpg", GOOD, "image/jpeg")),
        ("file", ("bad.jpg", b"nope", "image/jpeg")),
    ]
    answer = http.post("/v1/classify", files=mixed)
    assert answer.status_code == 422
    rows = answer.json()["results"]
    assert [(r["path"], r["status"]) for r in rows] == [("good.jpg", "ok"), ("bad.jpg", "error")]
    other = http.post("/v1/classify", files={"picture": ("a.jpg", GOOD, "image/jpeg")})
    assert other.status_code == 400 and "'picture'" in other.json()["error"]
    too_many = [("file", (f"{i}.jpg", GOOD, "image/jpeg")) for i in range(MAX_QUEUE + 1)]
    answer = http.post("/v1/classify", files=too_many)
    assert answer.status_code == 413 and "limit" in answer.json()["error"]
    for bad in ("0", "abc"):
        answer = http.post(
            f"/v1/classify?top_k={bad}", content=GOOD, headers={"Content-Type": "image/jpeg"}
        )
        assert answer.status_code == 400 and "top_k" in answer.json()["error"]


def test_queue_full_is_503_with_retry_after(http, server, tmp_path):
    """8 images to the slow model fill its queue (--max-queue 8); one more image meanwhile is
    refused. The request that fills the queue may finish before the next one arrives on a
    loaded machine: then the attempt is repeated (no timing is asserted)."""
    data = color_png("red", tmp_path)
    files = [("file", (f"{i}.png", data, "image/png")) for i in range(MAX_QUEUE)]
    url = f"{server.url}/v1/models/slow/classify"
    png = {"Content-Type": "image/png"}
    for _ in range(10):
        with ThreadPoolExecutor(1) as pool:
            filling = pool.submit(httpx.post, url, files=files, headers=AUTH, timeout=120)
            while metric(metrics(http), "edgecnn_images_in_flight", model="slow") < MAX_QUEUE:
                if filling.done():
                    break
            refused = http.post("/v1/models/slow/classify", content=data, headers=png)
            other_model = http.post("/v1/models/color/classify", content=data, headers=png)
            assert filling.result().status_code == 200
        assert refused.status_code in (200, 503), refused.text
        assert other_model.status_code == 200  # one queue per model
        if refused.status_code == 503:
            break
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json()["kind"] == "queue_full"
    assert metric(metrics(http), "edgecnn_errors_total", kind="queue_full") >= 1


@pytest.mark.slow
def test_slow_client_holds_no_worker_and_times_out():
    # --workers 1: if the stalled upload held the decode worker, nothing else would be served;
    # its 900 kB count against --max-buffer-mb 1.5, so a 700 kB upload meanwhile gets 503
    server = Server(
        str(default_model_path("cpu")), "--provider", "cpu", "--workers", "1",
        "--timeout", "8", "--max-body-mb", "1", "--max-buffer-mb", "1.5",
    )  # fmt: skip
    http = httpx.Client(base_url=server.url, timeout=60)
    with socket.create_connection((server.host, server.port)) as slow:
        slow.sendall(
            b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: image/jpeg\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 900_000
        )
        while metric(metrics(http), "edgecnn_body_bytes_buffered") < 900_000:
            pass
        for _ in range(5):
            answer = http.post("/v1/classify", content=GOOD, headers={"Content-Type": "image/jpeg"})
            assert answer.status_code == 200
        big = b"x" * 700_000
        busy = http.post("/v1/classify", content=big, headers={"Content-Type": "image/jpeg"})
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1", busy.text
        reply = slow.makefile("rb").read()  # the server answers and closes after --timeout
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), reply[:200]
    assert json.loads(body)["kind"] == "timeout_reading_body"
    assert metric(metrics(http), "edgecnn_body_bytes_buffered") == 0  # all given back
    http.close()
    assert server.stop() == 0


# --------------------------------------------------------------------------- KServe v2
def test_v2_health_and_metadata(http, server):
    assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}  # no key needed
    assert httpx.get(f"{server.url}/v2/health/ready").json() == {"ready": True}
    assert http.get("/v2/models/color/ready").json()["ready"] is True
    meta = http.get("/v2/models/shapes-int8").json()
    assert meta["parameters"]["labels"] == ["circle", "square", "star", "triangle"]
    assert meta["inputs"][0] == {"name": "image", "datatype": "UINT8", "shape": [-1, 96, 96, 3]}
    assert meta["outputs"][0] == {"name": "probabilities", "datatype": "FP32", "shape": [-1, 4]}
    assert http.get("/v2").json()["name"] == "edgecnn"
    assert http.get("/v2/models/nope").status_code == 404


def v2_bytes(*images: bytes, wrap: bool = False) -> dict:
    data = [base64.b64encode(i).decode() for i in images]
    data = [{"b64": d} for d in data] if wrap else data
    return {
        "id": "r1",
        "inputs": [
            {"name": "image_bytes", "shape": [len(data)], "datatype": "BYTES", "data": data}
        ],
    }


def test_v2_infer_with_encoded_images(http):
    for wrap in (False, True):
        answer = http.post(
            "/v2/models/shapes-int8/infer",
            json=v2_bytes(GOOD, jpeg(SAMPLES / "star-2.jpg"), wrap=wrap),
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["id"] == "r1" and body["model_name"] == "shapes-int8"
        probs, labels = body["outputs"]
        assert probs["shape"] == [2, 4] and len(probs["data"]) == 8
        assert abs(sum(probs["data"][:4]) - 1) < 1e-3
        assert labels == {
            "name": "label",
            "datatype": "BYTES",
            "shape": [2],
            "data": ["circle", "star"],
        }


def test_v2_infer_with_a_uint8_tensor_matches_v1(http):
    meta = http.get("/v2/models/shapes-int8").json()["parameters"]
    path = SAMPLES / "square-1.jpg"
    pixels = load_image(path, InputSpec.from_dict(meta["input"]))  # the model's own preprocessing
    tensor = {"name": "image", "shape": [1, *pixels.shape], "datatype": "UINT8",
              "data": pixels.ravel().tolist()}  # fmt: skip
    answer = http.post("/v2/models/shapes-int8/infer", json={"inputs": [tensor]})
    assert answer.status_code == 200, answer.text
    probs, labels = answer.json()["outputs"]
    assert labels["data"] == ["square"]
    v1 = http.post(
        "/v1/classify", content=path.read_bytes(), headers={"Content-Type": "image/jpeg"}
    )
    assert max(probs["data"]) == pytest.approx(v1.json()["results"][0]["score"], abs=1e-5)


def tensor(shape: list[int], datatype: str, data: list) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "i", "shape": shape, "datatype": datatype, "data": data}]}
    ).encode()


PIXELS = [1, 96, 96, 3]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"inputs": []}', 400, "exactly one input"),
        (tensor([1], "FP32", [1.0]), 400, "not supported"),
        (tensor([2], "BYTES", ["AAAA"]), 400, "2 element"),
        (tensor([1], "BYTES", ["***"]), 400, "base64"),
        (tensor([1, 5, 5, 3], "UINT8", [0] * 75), 400, "does not match"),
        (tensor(PIXELS, "UINT8", [300] * 27648), 400, "0..255"),
        (tensor(PIXELS, "UINT8", [1] * 10), 400, "values"),
        (tensor(PIXELS, "UINT8", [0.5] * 27648), 400, "integers"),
        (tensor([1], "BYTES", ["aGVsbG8="]), 422, "not an image"),
        (json.dumps(v2_bytes(GOOD) | {"outputs": [{"name": "logits"}]}).encode(), 400, "output"),
    ],
    ids=["json", "array", "no-input", "fp32", "count", "base64", "shape", "range", "size",
         "floats", "not-image", "output"],
)  # fmt: skip
def test_v2_malformed_requests_are_4xx(http, body, status, message):
    answer = http.post(
        "/v2/models/shapes-int8/infer", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


# --------------------------------------------------------------------------- auth, docs, metrics
def test_api_key_is_required_except_for_health_and_docs(server):
    plain = httpx.Client(base_url=server.url, timeout=60)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        answer = plain.post(
            "/v1/classify", content=GOOD, headers={"Content-Type": "image/jpeg", **headers}
        )
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
        assert answer.json()["kind"] == "unauthorized"
    assert plain.get("/metrics").status_code == 401
    assert plain.get("/v2/models/color").status_code == 401
    docs = plain.get("/docs")
    assert docs.status_code == 200 and "/v1/models/{name}/classify" in docs.text
    spec = plain.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/v2/models/{name}/infer" in spec["paths"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_metrics_count_requests_errors_batches_and_load(http):
    http.post("/v1/classify", content=GOOD, headers={"Content-Type": "image/jpeg"})
    http.post("/v1/classify", content=b"", headers={"Content-Type": "image/jpeg"})
    values = metrics(http)
    ok = metric(values, "edgecnn_requests_total", endpoint="/v1/classify", status="200")
    assert ok >= 1
    assert metric(values, "edgecnn_requests_total", endpoint="/v1/classify", status="422") >= 1
    assert metric(values, "edgecnn_errors_total", kind="bad_image") >= 1
    assert metric(values, "edgecnn_images_total", model="shapes-int8", status="ok") >= 1
    assert metric(values, "edgecnn_batch_size_count", model="shapes-int8") >= 1
    assert metric(values, "edgecnn_queue_seconds_count", model="shapes-int8") >= 1
    assert metric(values, "edgecnn_request_duration_seconds_count", endpoint="/v1/classify") >= ok
    assert metric(values, "edgecnn_model_load_seconds", model="color") > 0
    assert metric(values, "edgecnn_images_per_second", model="shapes-int8") > 0
    assert metric(values, "edgecnn_requests_in_progress") == 1  # this scrape


# --------------------------------------------------------------------------- client, bench
def test_python_client(server, tmp_path):
    with Client(server.url, api_key=KEY) as client:
        assert client.ready()
        rows = client.classify([SAMPLES / "circle-2.jpg", GOOD, b"not an image"], top_k=3)
        assert [r["label"] for r in rows[:2]] == ["circle", "circle"]
        assert rows[2]["status"] == "error" and "label_3" in rows[0]
        assert client.classify(color_png("red", tmp_path), model="color")[0]["label"] == "red"
        assert client.models()[0]["name"] == "shapes-int8"
        with pytest.raises(ServerError, match="404"):
            client.classify(GOOD, model="nope")
    with Client(server.url) as anonymous, pytest.raises(ServerError, match="unauthorized"):
        anonymous.classify(GOOD)


def test_bench_server_measures_a_running_server(server, tmp_path):
    key = tmp_path / "key"
    key.write_text(KEY)
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        cli,
        ["bench", "--server", server.url, "--images", str(SAMPLES), "--concurrency", "4",
         "--requests", "40", "--api-key-file", str(key), "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "images/s" in result.output and "p99" in result.output
    report = json.loads(out.read_text())
    assert report["ok"] == report["requests"] == 40 and report["non_503_errors"] == 0
    assert report["latency_ms"]["count"] == 40 and report["images_per_second"] > 0


# --------------------------------------------------------------------------- CLI, shutdown
def test_cli_refuses_bad_setups(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["serve", str(tmp_path / "missing.onnx"), "--port", "0"])
    assert result.exit_code == 1 and "no such model file" in result.output
    empty = tmp_path / "empty"
    empty.write_text("\n")
    result = runner.invoke(cli, ["serve", "--api-key-file", str(empty), "--port", "0"])
    assert result.exit_code == 1 and "one key" in result.output
    assert binds_all_interfaces("0.0.0.0") and binds_all_interfaces("::")
    assert not binds_all_interfaces("127.0.0.1") and not binds_all_interfaces("localhost")


@pytest.mark.slow
def test_sigterm_drains_requests_in_flight(tmp_path):
    running = Server(f"slow={slow_model(tmp_path / 'slow.onnx', steps=12)}", "--provider", "cpu")
    data = color_png("green", tmp_path)
    with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=running.url, timeout=60) as http:
        pending = pool.submit(
            httpx.post, f"{running.url}/v1/classify", content=data,
            headers={"Content-Type": "image/png"}, timeout=60,
        )  # fmt: skip
        while metric(metrics(http), "edgecnn_images_in_flight", model="slow") < 1:
            assert not pending.done(), pending.result().text
        running.proc.send_signal(signal.SIGTERM)
        answer = pending.result()
    assert answer.status_code == 200 and answer.json()["results"][0]["label"] == "green"
    assert running.proc.wait(timeout=120) == 0
    assert "stopped" in "".join(running.log)
    with pytest.raises(OSError):
        socket.create_connection((running.host, running.port), timeout=5).close()


# --------------------------------------------------------------------------- in-process units
def test_micro_batcher_gathers_admits_and_survives_a_failing_batch(color_model_path):
    from edgecnn.runtime.classifier import Classifier
    from edgecnn.serve.micro_batcher import MicroBatcher, QueueFull

    classifier = Classifier.load(color_model_path, provider="cpu")
    batches: list[int] = []
    batcher = MicroBatcher(
        classifier, max_batch=4, max_wait_ms=1000, max_queue=6,
        observer=lambda size, queued, seconds: batches.append(size),
    )  # fmt: skip
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255

    async def scenario() -> None:
        await batcher.start()
        tickets = [batcher.admit(1) for _ in range(5)]
        with pytest.raises(QueueFull):
            batcher.admit(2)  # 5 in flight + 2 > 6
        # all five decoded "at once": one batch of 4 (max_batch), then one of 1
        answers = await asyncio.gather(*(t.infer([red]) for t in tickets))
        assert all(classifier.labels[int(p.argmax())] == "red" for p, _ in answers)
        for t in tickets:
            t.release()
        assert batcher.in_flight == 0 and batcher.coming == 0
        with pytest.raises(ValueError, match="uint8"):  # a failing batch answers its job
            await batcher.admit(1).infer([red.astype(np.float32)])
        ticket = batcher.admit(1)
        assert (await ticket.infer([red]))[0].shape == (1, 3)  # and the loop goes on
        ticket.release()
        await batcher.stop()

    asyncio.run(scenario())
    assert batches[:2] == [4, 1] and batches[-1] == 1


def test_request_timeout_is_408_while_reading_and_504_after():
    from starlette.requests import Request

    from edgecnn.serve.app import _with_timeout
    from edgecnn.serve.http_errors import ServeError

    async def slow(request: Request, phase: str) -> None:
        request.state.phase = phase
        await asyncio.sleep(60)

    for phase, status in (("body", 408), ("work", 504)):
        handler = _with_timeout(lambda r, p=phase: slow(r, p), 0.05)
        request = Request({"type": "http", "method": "POST", "path": "/", "headers": []})
        with pytest.raises(ServeError) as caught:
            asyncio.run(handler(request))
        assert caught.value.status == status
