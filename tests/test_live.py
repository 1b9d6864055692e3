"""``edgecnn live`` and its engine, on video files and image folders generated with OpenCV.

Real models (tests/models.py colour model; the bundled shapes model when installed), real
codecs, real sockets; no wall-clock assertions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn.cli import cli
from edgecnn.errors import EdgecnnError, SourceError
from edgecnn.live.browser_preview import Preview, parse_address
from edgecnn.live.frame_outputs import JsonlOutput, Output, VideoOutput, close_all, display_problem
from edgecnn.live.frame_sources import open_source
from edgecnn.live.overlay import BAR, Annotation, annotate
from edgecnn.live.source_uris import locate
from edgecnn.live.stream import FrameResult, Smoother, Stream, play, run
from edgecnn.runtime.classifier import Classifier
from tests.conftest import BGR, write_color_image

SIZE = (160, 120)  # width, height of generated videos


def write_video(
    path: Path, colors: list[str], fps: float = 30.0, fourcc: str | None = None
) -> Path:
    """A video whose frame i is a solid ``colors[i]`` (true label = colour)."""
    code = fourcc or ("MJPG" if path.suffix == ".avi" else "mp4v")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*code), fps, SIZE)
    assert writer.isOpened()
    for color in colors:
        frame = np.empty((SIZE[1], SIZE[0], 3), np.uint8)
        frame[:] = BGR[color]
        writer.write(frame)
    writer.release()
    return path


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, ["live", *args], catch_exceptions=False)


def read_video(path: Path) -> tuple[int, tuple[int, int], list[np.ndarray]]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    size = (frames[0].shape[1], frames[0].shape[0]) if frames else (0, 0)
    return len(frames), size, frames


SEQUENCE = ["red"] * 10 + ["green"] * 10 + ["blue"] * 10


@pytest.fixture
def classifier(color_model_path: Path) -> Classifier:
    return Classifier.load(color_model_path, provider="cpu", threads=1)


# --------------------------------------------------------------------------- the engine
def test_stream_labels_every_frame_of_a_file(classifier: Classifier, tmp_path: Path) -> None:
    video = write_video(tmp_path / "rgb.mp4", SEQUENCE)
    with Stream(classifier, str(video), top_k=2) as stream:
        results = list(stream)
    assert [r.index for r in results] == list(range(30))
    assert [r.label for r in results] == SEQUENCE
    assert all(len(r.prediction.top) == 2 and r.latency_ms >= 0 for r in results)
    summary = stream.summary()
    assert (summary.frames, summary.labelled, summary.dropped) == (30, 30, 0)
    assert summary.ended == "end of file"
    assert summary.latency_ms["count"] == 30 and summary.inference_ms["count"] == 30


def test_every_and_max_frames(classifier: Classifier, tmp_path: Path) -> None:
    video = write_video(tmp_path / "rgb.avi", SEQUENCE)
    with Stream(classifier, str(video), every=3) as stream:
        results = list(stream)
    assert [r.index for r in results] == list(range(0, 30, 3))
    assert [r.label for r in results] == SEQUENCE[::3]
    assert stream.summary().skipped == 20
    with Stream(classifier, str(video), max_frames=7) as stream:
        assert len(list(stream)) == 7
    assert stream.summary().ended == "max frames reached"


def test_smoother_hysteresis_and_min_score() -> None:
    smoother = Smoother(("a", "b"), window=3)
    a, b = [1.0, 0.0], [0.0, 1.0]
    labels = [smoother.update(np.array(p))[0] for p in (a, a, b, a, a, b, b, b)]
    assert labels == ["a"] * 6 + ["b"] * 2  # lone flickers never switch; a majority does
    close = Smoother(("a", "b"), window=2)
    close.update(np.array([0.9, 0.1]))
    assert [close.update(np.array([0.47, 0.53]))[0] for _ in range(3)] == ["a"] * 3  # hysteresis
    gate = Smoother(("a", "b"), window=1, min_score=0.8)
    assert gate.update(np.array([0.7, 0.3])) == (None, None)
    assert gate.update(np.array([0.9, 0.1])) == ("a", pytest.approx(0.9))


def test_smoothing_suppresses_flicker_but_reports_a_real_change(
    classifier: Classifier, tmp_path: Path
) -> None:
    flicker = ["red"] * 8 + ["green", "red", "red"] * 5 + ["green"] * 10
    video = write_video(tmp_path / "flicker.avi", flicker)
    with Stream(classifier, str(video)) as raw:
        raw_changes = sum(r.changed for r in raw)
    assert raw_changes > 5  # the sequence really flickers frame by frame
    events = tmp_path / "events.jsonl"
    result = invoke(
        "-m", str(classifier.path), "-s", str(video), "--smooth", "5", "--jsonl", str(events),
        "--no-show", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["label"] for e in lines] == ["red", "green"]
    assert lines[1]["frame"] > 8 + 15  # switched only once the colour really changed
    assert all(e["changed"] for e in lines)


# --------------------------------------------------------------------------- CLI outputs
def test_cli_saves_annotated_video_and_events(color_model_path: Path, tmp_path: Path) -> None:
    video = write_video(tmp_path / "rgb.mp4", SEQUENCE)
    out, events = tmp_path / "annotated.mp4", tmp_path / "events.jsonl"
    result = invoke(
        "-m", str(color_model_path), "-s", str(video), "--save", str(out),
        "--jsonl", str(events), "--no-show", "-k", "3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "end of file: 30 frames (30 labelled, 0 failed), 0 dropped" in result.stderr
    assert "capture-to-label ms p50" in result.stderr
    # a console line per second, not per frame: their frame counts add up to the 30 frames
    assert sum(int(n) for n in re.findall(r"(\d+) frames?:", result.stdout)) == 30
    count, size, frames = read_video(out)
    assert (count, size) == (30, SIZE)
    amber = np.all(np.abs(frames[15].astype(int) - BAR) < 60, axis=2)
    assert amber.sum() > 20  # the top-1 confidence bar is drawn
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["label"] for e in lines] == SEQUENCE
    assert [e["frame"] for e in lines] == list(range(30))
    assert all(len(e["top"]) == 3 and e["error"] is None for e in lines)


def test_jsonl_to_stdout_and_image_folder_with_a_bad_file(
    color_model_path: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, color in enumerate(["red", "green", "blue"]):
        write_color_image(folder / f"{i}.png", color, size=(60 + 20 * i, 80))  # mixed sizes
    (folder / "3.jpg").write_bytes(b"not an image")
    out = tmp_path / "folder.avi"
    result = invoke(
        "-m", str(color_model_path), "-s", str(folder), "--jsonl", "-", "--save", str(out),
        "--no-show",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["label"] for e in lines] == ["red", "green", "blue", None]
    assert "cannot decode" in lines[3]["error"]
    assert "3 labelled, 1 failed" in result.stderr
    count, size, _ = read_video(out)
    assert (count, size) == (3, (80, 60))  # later sizes letterboxed into the first


def test_truncated_video_ends_cleanly_with_a_summary(
    color_model_path: Path, tmp_path: Path
) -> None:
    video = write_video(tmp_path / "long.avi", ["red"] * 60)
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    events = tmp_path / "events.jsonl"
    result = invoke(
        "-m", str(color_model_path), "-s", str(video), "--jsonl", str(events), "--no-show", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert 10 < len(lines) < 60 and {e["label"] for e in lines} == {"red"}
    assert "truncated or corrupt file?" in result.stderr


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("missing.mp4", "missing.mp4: no such file"),
        ("garbage.mp4", "garbage.mp4: cannot open (not a video"),
        ("7", "camera 7: cannot open"),
        ("http://127.0.0.1:{port}/stream.mjpg", "http://127.0.0.1:{port}/stream.mjpg: cannot open"),
        ("/dev/video99", "/dev/video99: no such camera device"),
        ("*.png", "*.png: no images to play (pattern matched no files)"),
    ],
)
def test_source_that_cannot_be_opened_is_an_error_naming_it(
    color_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str,
    expected: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.mp4").write_bytes(os.urandom(4096))
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source, expected = source.format(port=port), expected.format(port=port)
    result = invoke("-m", str(color_model_path), "-s", source, "--no-show")
    assert result.exit_code == 1
    assert f"Error: {expected}" in result.stderr
    with pytest.raises(SourceError, match=re.escape(expected.split(":")[0])):
        open_source(source)


def test_save_or_jsonl_into_a_missing_folder_fails_before_starting(
    color_model_path: Path, tmp_path: Path
) -> None:
    video = write_video(tmp_path / "rgb.avi", SEQUENCE)
    for flag in ("--save", "--jsonl"):
        target = tmp_path / "nowhere" / "out.mp4"
        result = invoke("-m", str(color_model_path), "-s", str(video), flag, str(target))
        assert result.exit_code == 1
        assert f"Error: {flag} {target}: the folder {target.parent} does not exist" in (
            result.stderr
        )
        assert "frames" not in result.stderr  # nothing ran
    result = invoke(
        "-m", str(color_model_path), "-s", str(video), "--save", str(tmp_path / "x.gif")
    )
    assert result.exit_code == 1 and "unknown video type .gif" in result.stderr


def test_port_in_use_is_a_clear_error(color_model_path: Path, tmp_path: Path) -> None:
    video = write_video(tmp_path / "rgb.avi", SEQUENCE)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = invoke(
            "-m", str(color_model_path), "-s", str(video), "--serve", f"127.0.0.1:{port}",
            "--no-show",
        )  # fmt: skip
    assert result.exit_code == 1
    assert f"port {port} is already in use" in result.stderr
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address("[::1]:0") == ("::1", 0)


def test_show_without_a_display_is_a_message_not_an_abort(
    color_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    video = write_video(tmp_path / "rgb.avi", SEQUENCE)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    for display in (None, ":77"):  # no display at all; a display nobody serves
        if display is None:
            monkeypatch.delenv("DISPLAY", raising=False)
        else:
            monkeypatch.setenv("DISPLAY", display)
            if not sys.platform.startswith("linux") or display_problem() is None:
                continue  # a real X server answers on :77 here
        result = invoke("-m", str(color_model_path), "-s", str(video), "--show", "-q")
        assert result.exit_code == 0, result.output
        assert "warning: --show ignored" in result.stderr
        assert "--serve HOST:PORT" in result.stderr


def test_a_failing_output_keeps_what_was_written_and_the_summary(
    classifier: Classifier, tmp_path: Path
) -> None:
    class DiskFull(Output):
        def write(self, result: FrameResult, annotated: np.ndarray | None) -> None:
            if result.index == 12:
                raise EdgecnnError("disk full")

    video = write_video(tmp_path / "rgb.avi", SEQUENCE)
    events, out = tmp_path / "e.jsonl", tmp_path / "v.avi"
    with Stream(classifier, str(video)) as stream:
        outputs = [JsonlOutput(str(events), stream.is_event), VideoOutput(str(out), 30), DiskFull()]
        with pytest.raises(EdgecnnError, match="disk full"):
            try:
                play(stream, outputs)
            finally:
                assert close_all(outputs) == []
    assert stream.summary().ended == "failed (EdgecnnError)"
    assert [json.loads(line)["frame"] for line in events.read_text().splitlines()] == list(
        range(13)
    )
    assert read_video(out)[0] == 13


# --------------------------------------------------------------------------- image decoding
def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose (valid) header claims ``width`` x ``height`` pixels, with no pixel data."""
    fields = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    ihdr = (
        struct.pack(">I", 13) + b"IHDR" + fields + struct.pack(">I", zlib.crc32(b"IHDR" + fields))
    )
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"\x00\x00\x00\x00IEND\xaeB`\x82"


def test_image_folder_sees_the_pixels_classify_sees(classifier: Classifier, tmp_path: Path) -> None:
    """A large JPEG is decoded at reduced size by classify; live on its folder must match it
    exactly, and refuse what classify refuses (truncated JPEG, absurd pixel counts)."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:1200, 0:1600]
    image = np.stack([x * 255 // 1600, y * 255 // 1200, (x + y) * 255 // 2800], -1)
    image = np.clip(image + rng.integers(-40, 40, image.shape), 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    folder = tmp_path / "photos"
    folder.mkdir()
    big = folder / "a_big.jpg"
    big.write_bytes(jpeg.tobytes())
    (folder / "b_truncated.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    (folder / "c_bomb.png").write_bytes(_png_header_only(20000, 20000))
    expected = classifier.predict(str(big), top_k=3)
    full = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)  # what live used to do: a full-size decode
    assert not np.array_equal(classifier.prepare(full), classifier.prepare(str(big)))
    with Stream(classifier, str(folder), top_k=3) as stream:
        results = list(stream)
    assert results[0].prediction.top == expected.top  # identical probabilities
    assert "truncated JPEG" in (results[1].prediction.error or "")
    assert "refused" in (results[2].prediction.error or "")


# --------------------------------------------------------------------------- closing
def test_closing_from_another_thread_leaves_the_capture_to_its_reader(
    classifier: Classifier, tmp_path: Path
) -> None:
    video = write_video(tmp_path / "loop.avi", SEQUENCE[:6])
    unread = open_source(str(video))
    unread.close()  # never read: close itself releases the capture
    assert not unread._capture.isOpened()  # type: ignore[attr-defined]
    with Stream(classifier, str(video), loop=True) as stream:
        for n, _ in enumerate(stream, 1):
            if n == 20:  # looped more than once; stop from elsewhere, mid-read
                stopper = threading.Thread(target=stream.stop, args=("stopped elsewhere",))
                stopper.start()
                stopper.join(10)
    reader = stream.source._reader
    assert reader is not None and not reader.is_alive()
    assert stream.summary().ended == "stopped elsewhere"


# --------------------------------------------------------------------------- non-UTF-8 names
def _live_process(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """``edgecnn live`` in a child process (a segfault fails the test instead of pytest), with
    strict UTF-8 stdout so that an unprintable name cannot slip through."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}
    env.pop("DISPLAY", None)
    command = [sys.executable, "-m", "edgecnn", "live", "--no-show", *args]
    return subprocess.run(command, capture_output=True, cwd=cwd, env=env, timeout=60)


@pytest.mark.skipif(sys.platform != "linux", reason="non-UTF-8 file names need a byte-named FS")
def test_non_utf8_names_are_labelled_written_and_printed(
    color_model_path: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    write_color_image(folder / "a.png", "red")
    write_color_image(os.fsdecode(bytes(folder) + b"/b\xff.png"), "green")
    done = _live_process("-m", str(color_model_path), "-s", "frames", "--jsonl", "e.jsonl",
                         "--console", "event", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b"frames/b\\xff.png: green" in done.stdout  # console: printable, escaped
    events = (tmp_path / "e.jsonl").read_bytes()  # file: the name's own bytes, as classify
    assert b'"source": "frames/b\xff.png"' in events and b'"label": "green"' in events
    alone = os.fsdecode(b"c\xff.png")
    write_color_image(tmp_path / alone, "blue")
    done = _live_process("-m", str(color_model_path), "-s", alone, "--jsonl", "-", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.decode("utf-8", "surrogateescape"))["source"] == alone


@pytest.mark.skipif(sys.platform != "linux", reason="non-UTF-8 file names need a byte-named FS")
def test_non_utf8_video_paths_are_a_clear_error_not_a_crash(
    color_model_path: Path, tmp_path: Path
) -> None:
    video = write_video(tmp_path / "v.avi", SEQUENCE[:3])
    os.rename(video, os.fsdecode(bytes(tmp_path) + b"/vid\xff.avi"))
    done = _live_process("-m", str(color_model_path), "-s", os.fsdecode(b"vid\xff.avi"),
                         cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert b"Error: vid\\xff.avi: this video path is not valid UTF-8" in done.stderr
    write_video(tmp_path / "v.avi", SEQUENCE[:3])
    os.mkdir(bytes(tmp_path) + b"/out\xff")
    save = os.fsdecode(b"out\xff/v.avi")
    done = _live_process("-m", str(color_model_path), "-s", "v.avi", "--save", save,
                         cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert b"Error: --save out\\xff/v.avi: the name is not valid UTF-8" in done.stderr


# --------------------------------------------------------------------------- preview
def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_preview_serves_page_state_snapshot_and_mjpeg() -> None:
    frame = annotate(np.zeros((120, 160, 3), np.uint8), Annotation(top=[("red", 0.9)]))
    with Preview("127.0.0.1", 0, title="<test>") as preview:
        page = _get(preview.url).decode()
        assert '<img id="stream" src="/stream.mjpg"' in page and "&lt;test&gt;" in page
        preview.publish(frame, {"frame": 3, "label": "red", "score": 0.9, "running": True})
        assert json.loads(_get(preview.url + "state.json"))["label"] == "red"
        snapshot = cv2.imdecode(np.frombuffer(_get(preview.url + "snapshot.jpg"), np.uint8), 1)
        assert snapshot.shape == frame.shape
        with urllib.request.urlopen(preview.url + "stream.mjpg", timeout=10) as stream:
            assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            assert stream.readline().strip() == b"--edgecnnframe"
        with pytest.raises(urllib.error.HTTPError):
            _get(preview.url + "nope")


def test_slow_preview_clients_never_block_the_loop() -> None:
    frame = np.full((480, 640, 3), 128, np.uint8)
    with Preview("127.0.0.1", 0) as preview:
        host, port = "127.0.0.1", preview.port
        stalled = []
        for _ in range(10):  # more viewers than allowed, none of them reading
            sock = socket.create_connection((host, port), timeout=10)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: localhost\r\n\r\n")
            stalled.append(sock)
        for i in range(300):  # ~30 MB of JPEG the clients never read
            frame[0, 0] = i % 256
            preview.publish(frame.copy(), {"frame": i})
        assert json.loads(_get(preview.url + "state.json"))["frame"] == 299
        for sock in stalled:
            sock.close()


def test_reconnect_reopens_a_stream_that_stopped(classifier: Classifier) -> None:
    """An MJPEG stream (served by our own preview) stops, then comes back on the same port."""
    red = np.empty((SIZE[1], SIZE[0], 3), np.uint8)
    red[:] = BGR["red"]
    server = Preview("127.0.0.1", 0).start()
    port = server.port
    stop = threading.Event()
    current = [server]

    def feed() -> None:
        while not stop.is_set():
            current[0].publish(red.copy(), {})
            stop.wait(1 / 30)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    notes: list[str] = []
    url = f"http://127.0.0.1:{port}/stream.mjpg"
    try:
        with Stream(classifier, url, reconnect=True, notify=notes.append) as stream:
            for n, result in enumerate(stream, 1):
                assert result.label == "red"
                if n == 5:  # the camera goes away and comes back
                    server.close()
                    current[0] = Preview("127.0.0.1", port).start()
                if n == 15:
                    break
        assert stream.summary().reconnects >= 1
        assert any("reopening in" in note for note in notes)
        assert any("reopened" in note for note in notes)
        with Stream(classifier, url) as once:  # without reconnect the run just ends
            for n, _ in enumerate(once, 1):
                if n == 3:
                    current[0].close()
        assert once.summary().ended == "stream ended"
    finally:
        stop.set()
        current[0].close()


def test_live_source_labels_the_newest_frame_and_counts_drops(
    classifier: Classifier, tmp_path: Path
) -> None:
    """A file played as a 60 fps camera, labelled by a consumer slower than that."""
    video = write_video(tmp_path / "cam.avi", SEQUENCE, fps=60)
    with Stream(classifier, str(video), realtime=True) as stream:
        results = []
        for result in stream:
            results.append(result)
            threading.Event().wait(0.05)  # a slow model: ~20 fps
    summary = stream.summary()
    indices = [r.index for r in results]
    assert summary.dropped > 0 and summary.ended == "end of file"
    assert indices == sorted(set(indices)) and len(results) + summary.dropped <= 30
    assert all(r.label == SEQUENCE[r.index] for r in results)


# --------------------------------------------------------------------------- process level
def test_sigterm_ends_a_realtime_run_keeping_summary_and_outputs(
    color_model_path: Path, tmp_path: Path
) -> None:
    video = write_video(tmp_path / "loop.avi", SEQUENCE, fps=60)
    out, events = tmp_path / "term.avi", tmp_path / "term.jsonl"
    command = [
        sys.executable, "-m", "edgecnn", "live", "-m", str(color_model_path), "-s", str(video),
        "--realtime", "--loop", "--no-show", "--save", str(out), "--jsonl", str(events),
        "--console", "event",
    ]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(40):  # wait until frames flow
            assert child.stdout is not None and child.stdout.readline()
        child.send_signal(signal.SIGTERM)
        child.send_signal(signal.SIGTERM)  # an impatient second one, during the shutdown
        _, stderr = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 143, stderr  # 128 + SIGTERM, after a clean shutdown
    assert "interrupted:" in stderr and "capture-to-label ms p50" in stderr
    saved = int(stderr.split("saved ")[1].split()[0])
    count, size, _ = read_video(out)
    assert count == saved >= 40 and size == SIZE
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert len(lines) >= 40 and {e["label"] for e in lines} <= {"red", "green", "blue"}
    assert "tensorflow" not in stderr.lower()


def test_python_api_run_and_locate(classifier: Classifier, tmp_path: Path) -> None:
    video = write_video(tmp_path / "rgb.mp4", SEQUENCE)
    events = tmp_path / "e.jsonl"
    summary = run(classifier, str(video), jsonl=str(events), smooth=3)
    assert summary.frames == 30 and summary.events == 3
    assert [json.loads(x)["label"] for x in events.read_text().splitlines()] == [
        "red", "green", "blue",
    ]  # fmt: skip
    assert locate("0").kind == "camera" and locate("rtsp://u:pw@cam/1").name == "rtsp://u:***@cam/1"
    assert locate(str(tmp_path)).kind == "images" and locate(f"file://{video}").kind == "video"


# --------------------------------------------------------------------------- bundled model
def test_bundled_shapes_model_on_drawn_shapes(tmp_path: Path) -> None:
    from edgecnn.data.shapes import SHAPE_LABELS, draw_shape
    from edgecnn.runtime.classifier import default_model_path

    model = default_model_path("cpu")
    rng = np.random.default_rng(7)
    truth = [label for label in SHAPE_LABELS for _ in range(8)]
    path = tmp_path / "shapes.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (640, 480))
    for label in truth:
        writer.write(draw_shape(label, (480, 640), rng))
    writer.release()
    with Stream(Classifier.load(model, provider="cpu"), str(path)) as stream:
        labels = [r.label for r in stream]
    assert len(labels) == len(truth)
    accuracy = np.mean([a == b for a, b in zip(labels, truth, strict=True)])
    assert accuracy >= 0.8, list(zip(labels, truth, strict=True))


# --------------------------------------------------------------------------- window
@pytest.mark.skipif(
    not (shutil.which("Xvfb") and shutil.which("xdotool")),
    reason="needs Xvfb and xdotool (apt-get install xvfb xdotool) to test the window",
)
def test_window_opens_where_a_display_exists_and_q_quits(
    color_model_path: Path, tmp_path: Path
) -> None:
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        pass_fds=[write],
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    child = None
    try:
        with os.fdopen(read) as pipe:
            env = {**os.environ, "DISPLAY": f":{pipe.readline().strip()}"}
        env.pop("WAYLAND_DISPLAY", None)
        video = write_video(tmp_path / "loop.avi", SEQUENCE)
        command = [
            sys.executable, "-m", "edgecnn", "live", "-m", str(color_model_path), "-s",
            str(video), "--realtime", "--loop",
        ]  # fmt: skip
        child = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(5):  # frames flow (the window is shown before the first line)
            assert child.stdout is not None and child.stdout.readline()
        found = subprocess.run(
            ["xdotool", "search", "--sync", "--name", "edgecnn live"],
            env=env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        window = found.stdout.split()[0]
        subprocess.run(["xdotool", "key", "--window", window, "q"], env=env, timeout=30)
        _, stderr = child.communicate(timeout=30)
        assert child.returncode == 0, stderr
        assert "quit from the window:" in stderr
    finally:
        if child is not None:
            child.kill()
        xvfb.terminate()
        xvfb.wait(10)


def test_live_library_messages_name_parameters_the_cli_names_flags(
    tmp_path: Path, color_model_path, color_folder
) -> None:
    """From Python the message names the `serve` / `save` parameters; the CLI shows the flags."""
    from edgecnn.errors import EdgecnnError
    from edgecnn.live.browser_preview import parse_address
    from edgecnn.live.frame_outputs import check_paths

    with pytest.raises(EdgecnnError, match=r"^`serve` 'nonsense': expected HOST:PORT"):
        parse_address("nonsense")
    with pytest.raises(EdgecnnError, match=r"^`save` .*: the folder .* does not exist"):
        check_paths(save=str(tmp_path / "missing" / "out.mp4"))
    args = ["live", "-m", str(color_model_path), "-s", str(color_folder), "--serve", "nonsense"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert "--serve 'nonsense': expected HOST:PORT" in result.output
