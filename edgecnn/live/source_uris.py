"""Source URIs for ``live``: a camera index or device, a URL, a video file, an image folder or
glob -> :class:`Location`; and the OpenCV capture a location opens, with the reason when it does
not (for a URL, found by connecting to its host).

OpenCV is never handed a path that is not valid UTF-8 (its C++ API crashes on them): such a
video, device or URL is refused with a :class:`SourceError`.
"""

from __future__ import annotations

import glob
import os
import re
import socket
import sys
import time
import urllib.parse
from dataclasses import dataclass

import cv2

from edgecnn.classify.result_files import display
from edgecnn.errors import SourceError
from edgecnn.image_files import is_glob, is_image

#: How long OpenCV's FFmpeg backend may wait to open / read a network stream (ms).
NETWORK_TIMEOUT_MS = 10_000

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass(frozen=True)
class Location:
    """A parsed source URI: what kind of source it is and what OpenCV is given."""

    kind: str  #: "camera", "url", "video", "images"
    target: int | str
    name: str

    @property
    def live(self) -> bool:
        """True for sources that produce frames in real time (cameras, network streams)."""
        return self.kind in ("camera", "url")


def locate(source: str | int | os.PathLike[str]) -> Location:
    """Parse a source URI; raises :class:`SourceError` for paths that do not exist."""
    if isinstance(source, int):
        return Location("camera", source, f"camera {source}")
    text = os.fsdecode(source)
    if text.strip().isdigit():
        return Location("camera", int(text), f"camera {int(text)}")
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif _URL.match(text):
        return Location("url", _for_opencv(text, "URL"), _redact(text))
    name = display(text)
    if text.startswith("/dev/"):
        if not os.path.exists(text):
            raise SourceError(f"{name}: no such camera device")
        return Location("camera", _for_opencv(text, "device path"), name)
    if os.path.isdir(text):
        return Location("images", text, name)
    if os.path.isfile(text):
        if is_image(text):
            return Location("images", text, name)
        return Location("video", _for_opencv(text, "video path"), name)
    if is_glob(text):
        return Location("images", text, name)
    if os.path.lexists(text):
        raise SourceError(f"{name}: not a regular file, folder or device")
    raise SourceError(f"{name}: no such file, folder, camera index or URL")


def _for_opencv(text: str, what: str) -> str:
    """``text`` unchanged when OpenCV can be given it: VideoCapture has no bytes API and
    crashes on a str holding undecodable (surrogate-escaped) bytes, so those are refused."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SourceError(
            f"{display(text)}: this {what} is not valid UTF-8, and OpenCV cannot open such "
            "names; rename it (or link it under a UTF-8 name)"
        ) from None
    return text


def _redact(url: str) -> str:
    """A URL safe to print: the password of ``user:pass@host`` replaced by ``***``."""
    return re.sub(r"(://[^/:@]+:)[^/@]*@", r"\1***@", url)


def open_capture(location: Location) -> cv2.VideoCapture:
    """Open an OpenCV capture for a camera, URL or video file; :class:`SourceError` if it fails."""
    target = location.target
    started = time.perf_counter()
    if location.kind == "url":
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            NETWORK_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            NETWORK_TIMEOUT_MS,
        ]
        capture = cv2.VideoCapture(str(target), cv2.CAP_FFMPEG, params)
    elif location.kind == "camera" and (isinstance(target, str) or sys.platform == "linux"):
        capture = cv2.VideoCapture(target, cv2.CAP_V4L2)  # not every backend in turn
    elif location.kind == "video":
        capture = cv2.VideoCapture(str(target), cv2.CAP_FFMPEG)
    else:
        capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        capture.release()
        why = {
            "camera": "no such camera, or it is busy / not permitted",
            "url": "",
            "video": "not a video OpenCV can decode (corrupt or truncated?)",
        }[location.kind]
        if location.kind == "url":
            why = url_failure(str(target), time.perf_counter() - started)
        if location.kind == "camera" and sys.platform == "linux":
            found = sorted(glob.glob("/dev/video*"))
            why += f"; video devices here: {', '.join(found) if found else 'none'}"
        raise SourceError(f"{location.name}: cannot open ({why})")
    if location.kind == "camera":
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # hint only: the grabber drains it anyway
    return capture


_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "http": 80, "https": 443}


def url_failure(url: str, elapsed_s: float) -> str:
    """Why a stream URL did not open, found by connecting to its host ourselves (OpenCV's FFmpeg
    backend only says "not opened"): host unknown, connection refused, no answer, or a server
    that answered but whose stream FFmpeg could not read."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return f"bad port in the URL ({parts.netloc.rsplit(':', 1)[-1]})"
    if not host or port is None:
        return "not a stream OpenCV's FFmpeg can read"
    timeout = NETWORK_TIMEOUT_MS / 1000
    try:
        with socket.create_connection((host, port), timeout=max(1.0, timeout - elapsed_s)):
            pass
    except socket.gaierror:
        return f"host {host} not found"
    except ConnectionRefusedError:
        return f"connection refused by {host}:{port} (nothing listening: device off or wrong port?)"
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:g} s"
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"
    if elapsed_s >= timeout * 0.9:
        return f"{host}:{port} accepts connections but sent no stream within {timeout:g} s"
    return (
        f"{host}:{port} answered, but not with a stream OpenCV's FFmpeg can read "
        "(wrong path or credentials, or an unsupported codec?)"
    )
