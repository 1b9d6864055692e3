"""The ``--serve`` preview in a real browser: headless Chromium screenshots the page.

Skipped only where Chromium is not installed (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn.live.overlay import BAR

CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"
)


def _wait_for_url(child: subprocess.Popen[str], limit: float = 30.0) -> str:
    """The preview URL from the child's stderr; a reader thread does the blocking reads (and keeps
    draining the pipe), so a silent child fails here after ``limit`` instead of hanging."""
    stderr = child.stderr
    assert stderr is not None
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for text in stderr:
            lines.put(text)
        lines.put("")  # end of output

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + limit
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if not line:
            break
        if line.startswith("preview: "):
            return line.split()[1]
    raise AssertionError(f"no preview URL printed (exit code {child.poll()})")


def _wait_for_frames(url: str, limit: float = 30.0) -> dict:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "state.json", timeout=5) as response:
            state = json.load(response)
        if state.get("frame") is not None:
            return state
        time.sleep(0.1)
    raise AssertionError("the preview never received a frame")


def test_browser_shows_the_annotated_stream(color_model_path: Path, tmp_path: Path) -> None:
    video = tmp_path / "red.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 30, (320, 240))
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[:] = (0, 0, 255)
    for _ in range(60):
        writer.write(frame)
    writer.release()
    command = [
        sys.executable, "-m", "edgecnn", "live", "-m", str(color_model_path), "-s", str(video),
        "--realtime", "--loop", "--serve", "127.0.0.1:0", "--no-show", "-q",
    ]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    shot = tmp_path / "shot.png"
    try:
        url = _wait_for_url(child)
        assert _wait_for_frames(url)["label"] == "red"
        profile = tmp_path / "chromium-profile"
        args = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={shot}",
            "--window-size=800,600", url,
        ]  # fmt: skip
        browser = subprocess.run(args, capture_output=True, text=True, timeout=90)
        assert shot.exists(), browser.stderr[-2000:]
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.communicate(timeout=30)
        finally:
            child.kill()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
    assert child.returncode == 143  # ended by SIGTERM, cleanly
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (600, 800)
    red = np.all(np.abs(image.astype(int) - (0, 0, 255)) < 40, axis=2).sum()
    bar = np.all(np.abs(image.astype(int) - BAR) < 50, axis=2).sum()
    page = np.all(np.abs(image.astype(int) - (17, 17, 17)) < 6, axis=2).sum()
    assert red > 0.1 * image.shape[0] * image.shape[1]  # the 320x240 frame is on the page
    assert bar > 100  # with the overlay's top-1 confidence bar drawn on it
    assert page > 1000  # inside the preview page, not a bare image
