"""Running the app: bind the socket, start uvicorn, drain on SIGTERM / Ctrl-C.

The socket is bound here (not by uvicorn) so ``port=0`` works and the real address is known
before the first request. uvicorn turns SIGTERM and SIGINT into a graceful shutdown: the
listening socket closes at once, requests in flight finish (up to ``drain_s``), then the
micro-batchers and the decode pool stop.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import uvicorn

from edgecnn.errors import EdgecnnError
from edgecnn.serve.app import ServeSettings, create_app
from edgecnn.serve.served_models import LoadedModel

#: uvicorn answers 503 itself to connections beyond this (connections, not images)
MAX_CONNECTIONS = 1024
#: idle keep-alive connections are closed after this many seconds
KEEP_ALIVE_S = 5


@dataclass
class Stopped:
    """How the server stopped: the signals that asked it to (SIGTERM, SIGINT), if any."""

    signals: list[int] = field(default_factory=list)


def binds_all_interfaces(host: str) -> bool:
    """True for 0.0.0.0, :: and '' (every interface, reachable from the network)."""
    if host in ("", "*"):
        return True
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise EdgecnnError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def _record_signals(stopped: Stopped) -> Iterator[None]:
    # uvicorn re-raises the signal that stopped it once it has drained; with these handlers in
    # place that lands here instead of killing the process, so the caller picks the exit code.
    def note(signum: int, frame: object) -> None:
        stopped.signals.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(
    models: list[LoadedModel],
    settings: ServeSettings,
    sock: socket.socket,
    *,
    on_ready: Callable[[str], None] | None = None,
    log_level: str = "warning",
) -> Stopped:
    """Serve ``models`` on the bound ``sock`` until SIGTERM / SIGINT; returns how it stopped.

    Call from the main thread of a process that is only a server (it installs signal handlers).
    ``on_ready`` gets the base URL once every model is loaded and the app has started.
    """
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    app = create_app(models, settings, on_ready=None if on_ready is None else lambda: on_ready(url))
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        limit_concurrency=MAX_CONNECTIONS,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=int(settings.request_timeout_s) + 5,
        server_header=False,
    )
    server = uvicorn.Server(config)
    stopped = Stopped()
    with _record_signals(stopped):
        server.run(sockets=[sock])
    if not server.started:
        raise EdgecnnError("the server failed to start (see the log above)")
    return stopped
