"""The outputs of a live run: a window, an annotated video, JSON-lines events, a browser preview
and console lines, each an :class:`Output` fed one
:class:`~edgecnn.live.stream.FrameResult` at a time.

File names that are not valid UTF-8 are handled as ``classify`` handles them: written to files
as their original bytes (``surrogateescape``), printed with
:func:`edgecnn.classify.result_files.display`, and
never handed to OpenCV (its C++ API crashes on them).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from edgecnn.classify.result_files import display
from edgecnn.errors import EdgecnnError
from edgecnn.live.browser_preview import Preview, parse_address
from edgecnn.live.frame_result import FrameResult
from edgecnn.live.frame_source_base import FrameSource, Notify
from edgecnn.printable import print_line
from edgecnn.user_files import check_output_path

#: Video containers and the FourCC written into them.
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}
_ENCODING = {
    "encoding": "utf-8",
    "errors": "surrogateescape",
}  # as edgecnn.classify.result_files writes


def display_problem() -> str | None:
    """Why no window can be opened here (None when one can).

    Checked without touching OpenCV's GUI in this process, because Qt / GTK abort the whole
    process when there is no display: environment first, then OpenCV's GUI backend, then a
    window opened in a child process.
    """
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display (DISPLAY / WAYLAND_DISPLAY not set: headless or SSH session?)"
    match = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    if match is None or match.group(1).upper() == "NONE":
        return "this OpenCV has no GUI backend (opencv-python-headless?)"
    probe = "import cv2; cv2.namedWindow('edgecnn'); cv2.waitKey(1); cv2.destroyAllWindows()"
    try:
        child = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not test a window ({exc})"
    if child.returncode != 0:
        where = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or "the display"
        last = (child.stderr.strip().splitlines() or ["no message"])[-1][:160]
        return f"OpenCV cannot open a window on {where} ({last})"
    return None


class Output:
    """An output of a live run: ``write`` gets each result (and the annotated frame when
    ``wants_image``); returning False ends the run (q / Esc in the window)."""

    wants_image = False

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> bool | None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release (called once, also after a failure)."""

    def report(self) -> str | None:
        """A line for the closing summary about what it wrote (None: nothing to say)."""
        return None


class WindowOutput(Output):
    """An OpenCV window; q or Esc (or closing the window) ends the run."""

    wants_image = True

    def __init__(self, title: str = "edgecnn live") -> None:
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> bool:
        if annotated is not None:
            cv2.imshow(self.title, annotated)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), ord("Q"), 27):
            return False
        return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        cv2.destroyWindow(self.title)
        cv2.waitKey(1)


class VideoOutput(Output):
    """The annotated frames as a video file (``mp4v`` in .mp4/.mov/.mkv, ``MJPG`` in .avi),
    opened at the first frame's size; later frames of another size are letterboxed into it.

    The video keeps the source's timing: for files it is written at ``fps / every``; for live
    sources each annotated frame is repeated over the frames dropped after it (up to one
    second), so the recording plays back in real time however slow the model was."""

    wants_image = True

    def __init__(self, path: str, fps: float | None, *, every: int = 1, live: bool = False) -> None:
        self.path = path
        self.fourcc = video_fourcc(path)
        nominal = fps if fps and fps > 0 else 30.0
        self.live = live
        self.fps = nominal if live else nominal / max(1, every)
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._pending: tuple[int, np.ndarray] | None = None  # live: last frame, its index

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> None:
        if annotated is None:
            return
        if self._writer is None:
            height, width = annotated.shape[:2]
            writer = cv2.VideoWriter(
                self.path, cv2.VideoWriter.fourcc(*self.fourcc), self.fps, (width, height)
            )
            if not writer.isOpened():
                check_output_path(self.path, "`save`")  # the likely reason, said plainly
                raise EdgecnnError(
                    f"`save` {display(self.path)}: OpenCV cannot write {self.fourcc} video here"
                )
            self._writer, self.size = writer, (width, height)
        if (annotated.shape[1], annotated.shape[0]) != self.size:
            annotated = _letterbox(annotated, self.size)
        if not self.live:
            self._put(annotated, 1)
            return
        if self._pending is not None:  # hold the previous frame over the frames dropped since
            index, previous = self._pending
            self._put(previous, max(1, min(result.index - index, round(self.fps))))
        self._pending = (result.index, annotated)

    def _put(self, image: np.ndarray, times: int) -> None:
        assert self._writer is not None
        for _ in range(times):
            self._writer.write(image)
        self.frames += times

    def close(self) -> None:
        if self._writer is not None:
            if self._pending is not None:
                self._put(self._pending[1], 1)
                self._pending = None
            self._writer.release()
            self._writer = None

    def report(self) -> str:
        return f"saved {self.frames} annotated frames to {display(self.path)}"


def video_fourcc(path: str) -> str:
    """The FourCC for a ``save`` path; :class:`EdgecnnError` for an unknown extension or a
    name OpenCV's VideoWriter cannot take (not valid UTF-8: it has no bytes API and crashes)."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in FOURCC:
        raise EdgecnnError(
            f"`save` {display(path)}: unknown video type {extension or '(none)'}; "
            f"use one of {', '.join(FOURCC)}"
        )
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise EdgecnnError(
            f"`save` {display(path)}: the name is not valid UTF-8, and OpenCV cannot write "
            "such names; choose a UTF-8 name"
        ) from None
    return FOURCC[extension]


def check_paths(save: str | None = None, jsonl: str | None = None) -> None:
    """Fail before anything opens when an output path is unusable (each checked once)."""
    if save:
        video_fourcc(save)
        check_output_path(save, "`save`")
    if jsonl:
        check_output_path(jsonl, "`jsonl`", stdout=True)


def _letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    new = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    out = np.zeros((height, width, 3), np.uint8)
    x, y = (width - new[0]) // 2, (height - new[1]) // 2
    out[y : y + new[1], x : x + new[0]] = cv2.resize(image, new, interpolation=cv2.INTER_AREA)
    return out


class JsonlOutput(Output):
    """One JSON line per event (``-``: stdout), flushed per line (a crash leaves only complete
    lines). Names that are not valid UTF-8 are written as their original bytes, as
    ``classify`` writes them."""

    def __init__(self, path: str, is_event: Callable[[FrameResult], bool]) -> None:
        self.path = path
        self.is_event = is_event
        self._stdout = path == "-"
        self._fh: io.TextIOWrapper
        if self._stdout:
            sys.stdout.flush()
            self._fh = io.TextIOWrapper(sys.stdout.buffer, **_ENCODING)
            return
        try:
            self._fh = open(path, "w", **_ENCODING)  # noqa: SIM115
        except OSError as exc:
            raise EdgecnnError(
                f"`jsonl` {display(path)}: cannot write: {exc.strerror or exc}"
            ) from exc

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> None:
        if self.is_event(result):
            self._fh.write(json.dumps(result.event(), ensure_ascii=False) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._stdout:
            self._fh.flush()
            self._fh.detach()  # stdout itself stays open
        else:
            self._fh.close()


class PreviewOutput(Output):
    """Feeds each annotated frame to the browser preview (:class:`~.browser_preview.Preview`)."""

    wants_image = True

    def __init__(self, address: str, title: str = "") -> None:
        host, port = parse_address(address)
        self.preview = Preview(host, port, title=title).start()

    @property
    def url(self) -> str:
        """The page to open."""
        return self.preview.url

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> None:
        state = {
            **result.event(),
            "fps": round(result.fps, 2),
            "dropped": result.dropped,
            "running": True,
        }
        self.preview.publish(annotated, state)

    def close(self) -> None:
        self.preview.close()


class ConsoleOutput(Output):
    """One human line per event, through ``echo`` (stdout by default)."""

    def __init__(
        self, is_event: Callable[[FrameResult], bool], echo: Callable[[str], None] = print_line
    ) -> None:
        self.is_event = is_event
        self.echo = echo

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> None:
        if not self.is_event(result):
            return
        if not result.prediction.ok:
            line = f"{result.name}: error: {result.prediction.error}"
        else:
            shown = result.label or "(uncertain)"
            score = "" if result.score is None else f" {result.score:.3f}"
            line = (
                f"{result.name}: {shown}{score}  "
                f"({result.inference_ms or 0:.1f} ms inference, {result.latency_ms:.1f} ms e2e)"
            )
        self.echo(display(line))


class ConsoleSummaryOutput(Output):
    """One human line per second on stdout: FPS, the labels of that second's frames, latency,
    drops (a line per frame would scroll faster than anyone reads), through ``echo``."""

    def __init__(self, interval_s: float = 1.0, echo: Callable[[str], None] = print_line) -> None:
        self.interval_s = interval_s
        self.echo = echo
        self._reset(None)

    def _reset(self, start: float | None) -> None:
        self.start = start
        self.labels: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.last: FrameResult | None = None

    def write(self, result: FrameResult, annotated: np.ndarray | None) -> None:
        if self.start is None:
            self.start = result.captured
        if self.last is not None and result.captured - self.start >= self.interval_s:
            self._flush()
            self._reset(result.captured)
        ok = result.prediction.ok
        self.labels["error" if not ok else (result.label or "(uncertain)")] += 1
        self.latencies.append(result.latency_ms)
        self.last = result

    def _flush(self) -> None:
        last = self.last
        if last is None:
            return
        total = sum(self.labels.values())
        shares = ", ".join(f"{label} {n}" for label, n in self.labels.most_common(5))
        more = len(self.labels) - 5
        shares += f", {more} more" if more > 0 else ""
        latency = sorted(self.latencies)[len(self.latencies) // 2]
        self.echo(
            display(
                f"{last.name}: {last.fps:.1f} FPS; {total} frame{'s' if total != 1 else ''}: "
                f"{shares}; latency p50 {latency:.1f} ms; {last.dropped} dropped"
            )
        )

    def close(self) -> None:
        self._flush()
        self._reset(None)


def close_all(outputs: Sequence[Output]) -> list[str]:
    """Close every output even if some fail; return the failures' messages."""
    problems = []
    for output in outputs:
        try:
            output.close()
        except Exception as exc:
            problems.append(f"{type(output).__name__}: {exc}")
    return problems


def open_outputs(
    source: FrameSource,
    is_event: Callable[[FrameResult], bool],
    title: str,
    *,
    show: bool | None = False,
    serve: str | None = None,
    save: str | None = None,
    jsonl: str | None = None,
    console: bool | str = False,
    notify: Notify | None = None,
) -> list[Output]:
    """Open the requested outputs for frames of ``source`` (``is_event`` picks the events,
    ``title`` names the preview), failing (with nothing left open) when one is
    unusable: a file that cannot be created, a port in use. The paths are checked beforehand
    by :func:`check_paths` (as :func:`edgecnn.live.stream.run` does before opening the source).
    ``show`` None means a window only where a display exists; ``show`` True without one is a
    warning, not an abort."""
    say = notify or (lambda message: None)
    outputs: list[Output] = []
    try:
        if jsonl:
            outputs.append(JsonlOutput(jsonl, is_event))
        if save:
            outputs.append(VideoOutput(save, source.fps, every=source.every, live=source.live))
        if serve:
            preview = PreviewOutput(serve, title=title)
            outputs.append(preview)
            say(f"preview: {preview.url}")
            if preview.preview.host not in ("127.0.0.1", "::1", "localhost"):
                say("the preview is reachable from the network, without authentication")
        if show is not False:
            problem = display_problem()
            if problem is None:
                outputs.append(WindowOutput())
            elif show:
                say(
                    f"warning: `show` ignored: {problem}; watch with `serve` HOST:PORT in a "
                    "browser, or write `save` OUT.mp4"
                )
        if console and jsonl != "-":  # True or "event": a line per event; "second": summaries
            second = console == "second"
            outputs.append(ConsoleSummaryOutput() if second else ConsoleOutput(is_event))
    except BaseException:
        close_all(outputs)
        raise
    return outputs
