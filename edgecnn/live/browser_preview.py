"""A browser preview of a live run: MJPEG over HTTP from a standard-library server in a thread.

``/`` is a page showing the annotated stream and the current label (it polls ``/state.json``),
``/stream.mjpg`` the multipart JPEG stream any browser or ``ffplay`` shows, ``/snapshot.jpg`` the
newest frame, ``/state.json`` the newest result. It binds 127.0.0.1 unless told otherwise.

Hostile or broken clients cannot take it over: a viewer that stops reading is dropped after
``write_timeout`` seconds without progress (its socket send buffer is kept small, so a stall
shows at once), which frees its viewer slot; the listen backlog holds 128 connections; and
requests whose ``Host`` header names anything but this machine are refused (403), so a web page
using DNS rebinding cannot read ``/snapshot.jpg``: bound to a loopback address, only localhost
names are accepted; bound to another host, that host too, and bound to all interfaces, IP
literals and this machine's name.

The loop only hands over a reference to the newest annotated frame (:meth:`Preview.publish`):
JPEG encoding happens in the client threads, at most once per frame however many clients
watch, and each client always takes the newest frame, so a slow client sees fewer frames but
never slows the loop. Clients are capped; one that stops reading is dropped after a timeout.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
import threading
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

from edgecnn.classify.result_files import display
from edgecnn.errors import EdgecnnError

DEFAULT_HOST = "127.0.0.1"
BOUNDARY = "edgecnnframe"
MAX_CLIENTS = 8
CLIENT_TIMEOUT_S = 10.0
#: A viewer whose socket accepts nothing for this long is dropped and its slot freed.
WRITE_TIMEOUT_S = 5.0
#: Stream sockets' send buffer: small, so a viewer that stops reading blocks the write at once.
STREAM_SNDBUF = 256 * 1024
LISTEN_BACKLOG = 128
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "localhost.localdomain"})
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def allowed_hosts(bound: str) -> tuple[frozenset[str], bool]:
    """(host names a request's ``Host`` may carry, whether any IP literal is allowed too)."""
    names = set(LOCAL_NAMES)
    if bound in _WILDCARDS:
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        return frozenset(names), True
    names.add(bound.lower())
    return frozenset(names), False


def _host_part(header: str) -> str:
    value = header.strip().lower()
    if value.startswith("["):  # [v6]:port
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``PORT`` or ``[v6]:PORT`` -> (host, port); port 0 = any free."""
    value = text.strip()
    host, sep, port_text = value.rpartition(":")
    if not sep:
        host, port_text = "", value
    host = host.strip("[]") or DEFAULT_HOST
    try:
        port = int(port_text)
    except ValueError:
        raise EdgecnnError(f"`serve` {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080") from None
    if not 0 <= port <= 65535:
        raise EdgecnnError(f"`serve` {text!r}: port {port} is out of range (0-65535)")
    return host, port


class _Hub:
    """The newest frame and state, shared between the loop (writer) and client threads."""

    def __init__(self, quality: int) -> None:
        self.quality = quality
        self.cond = threading.Condition()
        self.seq = 0
        self.frame: np.ndarray | None = None
        self.jpeg: bytes | None = None
        self.state: dict[str, Any] = {"frame": None, "label": None, "running": True}
        self.closed = False
        self.clients = threading.BoundedSemaphore(MAX_CLIENTS)

    def publish(self, frame: np.ndarray | None, state: dict[str, Any]) -> None:
        with self.cond:
            if frame is not None:
                self.frame, self.jpeg = frame, None
                self.seq += 1
            self.state = state
            self.cond.notify_all()

    def newest(self, after: int, timeout: float) -> tuple[int, bytes | None]:
        """Wait up to ``timeout`` for a frame newer than ``after``; (seq, JPEG or None)."""
        with self.cond:
            if self.seq <= after and not self.closed:
                self.cond.wait(timeout)
            seq, frame, jpeg = self.seq, self.frame, self.jpeg
        if seq <= after or frame is None:
            return after, None
        if jpeg is None:  # encode outside the lock; cache it for the other clients
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                return seq, None
            jpeg = buf.tobytes()
            with self.cond:
                if self.seq == seq:
                    self.jpeg = jpeg
        return seq, jpeg

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.state = {**self.state, "running": False}
            self.cond.notify_all()


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgecnn live</title>
<style>
 body {{ margin: 0; background: #111; color: #eee; font: 16px system-ui, sans-serif; }}
 main {{ display: flex; flex-direction: column; align-items: center; padding: 8px; gap: 8px; }}
 img {{ max-width: 100%; max-height: 80vh; background: #222; }}
 #label {{ font-size: 28px; font-weight: 600; }}
 #info {{ color: #aaa; font-size: 14px; }}
</style></head>
<body><main>
<div><span id="label">waiting for frames...</span> <span id="score"></span></div>
<img id="stream" src="/stream.mjpg" alt="live annotated stream">
<div id="info">{title}</div>
</main>
<script>
const $ = (id) => document.getElementById(id);
async function poll() {{
  try {{
    const s = await (await fetch('/state.json', {{cache: 'no-store'}})).json();
    const waiting = s.frame === null ? 'waiting for frames...' : '(uncertain)';
    $('label').textContent = s.label ?? waiting;
    $('score').textContent = s.score == null ? '' : s.score.toFixed(2);
    const bits = [];
    if (s.fps != null) bits.push(s.fps.toFixed(1) + ' FPS');
    if (s.latency_ms != null) bits.push('e2e ' + s.latency_ms.toFixed(1) + ' ms');
    if (s.dropped) bits.push('dropped ' + s.dropped);
    if (!s.running) bits.push('stream ended');
    $('info').textContent = bits.join(' | ');
    if (!s.running) return;
  }} catch (e) {{ $('info').textContent = 'preview server not answering'; }}
  setTimeout(poll, 300);
}}
poll();
</script></body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = CLIENT_TIMEOUT_S  # a client that stops reading is dropped after this
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the loop owns the terminal
        return

    def _send(self, body: bytes, content_type: str, status: int = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _host_ok(self) -> bool:
        header = self.headers.get("Host")
        if header is None:  # HTTP/1.0 clients; browsers always send Host
            return True
        host = _host_part(header)
        names, any_ip = self.server.allowed
        return host in names or (any_ip and _is_ip(host))

    def do_GET(self) -> None:
        hub = self.server.hub
        path = self.path.split("?", 1)[0]
        try:
            if not self._host_ok():
                self.close_connection = True
                self._send(b"unknown Host\n", "text/plain", HTTPStatus.FORBIDDEN)
            elif path in ("/", "/index.html"):
                page = _PAGE.format(title=self.server.title).encode()
                self._send(page, "text/html; charset=utf-8")
            elif path == "/state.json":
                with hub.cond:
                    state = dict(hub.state)
                self._send(json.dumps(state).encode(), "application/json")
            elif path == "/snapshot.jpg":
                _, jpeg = hub.newest(0, timeout=2.0)
                if jpeg is None:
                    self._send(b"no frame yet\n", "text/plain", HTTPStatus.SERVICE_UNAVAILABLE)
                else:
                    self._send(jpeg, "image/jpeg")
            elif path == "/stream.mjpg":
                self._stream(hub)
            else:
                self._send(b"not found\n", "text/plain", HTTPStatus.NOT_FOUND)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def _stream(self, hub: _Hub) -> None:
        if not hub.clients.acquire(blocking=False):
            self._send(b"too many viewers\n", "text/plain", HTTPStatus.SERVICE_UNAVAILABLE)
            return
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
            self.connection.settimeout(self.server.write_timeout)  # per write: frees the slot
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            seq = 0
            while not hub.closed:
                seq, jpeg = hub.newest(seq, timeout=0.5)
                if jpeg is None:
                    continue
                head = (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n"
                ).encode()
                self.wfile.write(head + jpeg + b"\r\n")
                self.wfile.flush()
        finally:
            hub.clients.release()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG  # socketserver's default of 5 drops real requests
    hub: _Hub
    title: str
    allowed: tuple[frozenset[str], bool]
    write_timeout: float


class Preview:
    """The preview server: ``start()`` binds (raising a clear error), ``publish()`` per frame,
    ``close()`` at the end. Usable as a context manager."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 8080,
        *,
        quality: int = 80,
        title: str = "",
        write_timeout: float = WRITE_TIMEOUT_S,
    ) -> None:
        self.host, self.port = host, port
        self.write_timeout = write_timeout
        self._hub = _Hub(quality)
        self._title = title
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address (the real port once started, also when 0 was asked for)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        return f"http://{host}:{self.port}/"

    def start(self) -> Preview:
        """Bind and serve in a daemon thread; :class:`EdgecnnError` if the address is unusable."""
        server_cls = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        cls = server_cls if ":" in self.host else _Server
        where = f"`serve` {self.host}:{self.port}"
        try:
            server = cls((self.host, self.port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EdgecnnError(
                    f"{where}: port {self.port} is already in use (another edgecnn live?); "
                    "choose another port, or port 0 for any free one"
                ) from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise EdgecnnError(
                    f"{where}: not permitted (ports below 1024 need privileges)"
                ) from None
            reason = exc.strerror or str(exc)
            raise EdgecnnError(f"{where}: cannot listen there ({reason})") from None
        server.hub = self._hub
        server.allowed = allowed_hosts(self.host)
        server.write_timeout = self.write_timeout
        server.title = escape(display(self._title))  # any file name, also not UTF-8
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()
        return self

    def publish(self, frame: np.ndarray | None, state: dict[str, Any]) -> None:
        """Hand over the newest annotated BGR frame (not modified afterwards) and its state."""
        self._hub.publish(frame, state)

    def close(self) -> None:
        """Tell viewers the stream ended, stop serving and free the port (idempotent)."""
        self._hub.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None

    def __enter__(self) -> Preview:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
