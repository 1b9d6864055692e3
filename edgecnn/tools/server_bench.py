"""End-to-end benchmark of a running ``edgecnn serve``: latency percentiles and images/s.

``concurrency`` clients, each on its own keep-alive connection, post images back to back to
``/v1/classify`` (or ``/v1/models/NAME/classify``) until ``requests`` answers or ``duration``
seconds. Latency is measured per request from the first byte sent to the last byte read.

The load generator is a minimal HTTP/1.1 client on asyncio streams (Content-Length bodies,
keep-alive, reconnect on ``Connection: close``): a full client library costs several times
more CPU per request, and on a small machine that CPU is taken from the server being measured.
Only the standard library: ``edgecnn bench --server`` needs no extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edgecnn.errors import EdgecnnError
from edgecnn.tools.latency_stats import latency_stats


class ServerBenchError(EdgecnnError):
    """The server cannot be measured (bad URL, refused connection, not an HTTP answer)."""


@dataclass(frozen=True)
class Target:
    """Where requests go: host, port and the request path."""

    host: str
    port: int
    path: str
    api_key: str | None = None

    @classmethod
    def parse(cls, url: str, model: str | None = None, api_key: str | None = None) -> Target:
        """``http://host:port`` (+ optional model name) -> the classify endpoint."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ServerBenchError(f"{url}: expected http://HOST:PORT (https is not supported)")
        base = parts.path.rstrip("/")
        path = f"{base}/v1/models/{model}/classify" if model else f"{base}/v1/classify"
        return cls(parts.hostname, parts.port or 80, path, api_key)


class _Connection:
    """One keep-alive HTTP/1.1 connection that posts a body and reads the answer."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        if self._writer is None:
            try:
                self._reader, self._writer = await asyncio.open_connection(
                    self.target.host, self.target.port
                )
            except OSError as exc:
                raise ServerBenchError(
                    f"cannot connect to {self.target.host}:{self.target.port}: {exc}"
                ) from None
        auth = f"Authorization: Bearer {self.target.api_key}\r\n" if self.target.api_key else ""
        head = (
            f"POST {self.target.path} HTTP/1.1\r\nHost: {self.target.host}\r\n{auth}"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        assert self._reader is not None
        self._writer.write(head.encode() + body)
        try:
            return await self._read(self._reader)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            raise ServerBenchError(f"the server closed the connection: {exc}") from None

    async def _read(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        header = await reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            raise ServerBenchError(f"not an HTTP answer: {lines[0][:80]!r}") from None
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip().lower()
        if "content-length" not in fields:
            raise ServerBenchError("the answer has no Content-Length (chunked is not supported)")
        body = await reader.readexactly(int(fields["content-length"]))
        if fields.get("connection") == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


async def _client(
    target: Target,
    images: Sequence[bytes],
    start: int,
    budget: _Budget,
    latencies: list[float],
    statuses: Counter[int],
) -> None:
    connection = _Connection(target)
    try:
        for i in itertools.count(start):
            if not budget.take():
                return
            t0 = time.perf_counter()
            status, _ = await connection.post(images[i % len(images)], "image/jpeg")
            latencies.append((time.perf_counter() - t0) * 1e3)
            statuses[status] += 1
    finally:
        await connection.close()


class _Budget:
    """Hands out request slots until a count or a deadline is reached."""

    def __init__(self, requests: int | None, duration: float | None) -> None:
        self.left = requests
        self.deadline = None if duration is None else time.perf_counter() + duration

    def take(self) -> bool:
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return False
        if self.left is None:
            return True
        self.left -= 1
        return self.left >= 0


async def _measure(
    target: Target,
    images: Sequence[bytes],
    concurrency: int,
    requests: int | None,
    duration: float | None,
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    budget = _Budget(requests, duration)
    started = time.perf_counter()
    await asyncio.gather(
        *(_client(target, images, i, budget, latencies, statuses) for i in range(concurrency))
    )
    seconds = time.perf_counter() - started
    ok = statuses.get(200, 0)
    return {
        "url": f"http://{target.host}:{target.port}{target.path}",
        "concurrency": concurrency,
        "requests": sum(statuses.values()),
        "ok": ok,
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "non_503_errors": sum(v for k, v in statuses.items() if k not in (200, 503)),
        "seconds": seconds,
        "images_per_second": ok / seconds if seconds > 0 else 0.0,
        "latency_ms": latency_stats(latencies),
    }


def measure_server(
    url: str,
    images: Sequence[bytes],
    *,
    concurrency: int = 1,
    requests: int | None = None,
    duration: float | None = None,
    model: str | None = None,
    api_key: str | None = None,
    warmup: int = 20,
) -> dict[str, Any]:
    """Post ``images`` (encoded, one per request, round robin) from ``concurrency`` clients.

    Stops after ``requests`` answers or ``duration`` seconds (without either: 10 s). ``warmup``
    requests go first, unmeasured. Returns a JSON-ready report: status counts, images/s (200
    answers only) and latency statistics in ms.
    """
    if not images:
        raise ServerBenchError("no images to send")
    if concurrency < 1:
        raise ServerBenchError(f"concurrency must be >= 1, not {concurrency}")
    if requests is None and duration is None:
        duration = 10.0
    target = Target.parse(url, model, api_key)

    async def main() -> dict[str, Any]:
        if warmup:
            first = await _measure(target, images, min(concurrency, warmup), warmup, None)
            if first["ok"] == 0:
                codes = first["status_counts"]
                raise ServerBenchError(f"{first['url']}: no request succeeded (status {codes})")
        return await _measure(target, images, concurrency, requests, duration)

    return asyncio.run(main())


def terminal(report: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    lat = report["latency_ms"]
    counts = ", ".join(f"{k}: {v}" for k, v in report["status_counts"].items())
    return (
        f"{report['url']}  concurrency {report['concurrency']}\n"
        f"  {report['requests']} requests in {report['seconds']:.2f} s  ({counts})\n"
        f"  {report['images_per_second']:.1f} images/s\n"
        f"  latency ms: p50 {lat.get('p50', 0):.2f}  p90 {lat.get('p90', 0):.2f}  "
        f"p99 {lat.get('p99', 0):.2f}  max {lat.get('max', 0):.2f}"
    )


#: At most this many image files are read from a folder for ``--server`` runs.
MAX_PAYLOADS = 256


def payloads(folder: str | None, count: int = 32) -> list[bytes]:
    """Encoded images to send: the files of ``folder`` (sorted, at most :data:`MAX_PAYLOADS`),
    or ``count`` generated 640x480 JPEGs of the shapes set when no folder is given."""
    if folder is None:
        import cv2
        import numpy as np

        from edgecnn.data.shapes import SHAPE_LABELS, draw_shape

        rng = np.random.default_rng(0)
        return [
            cv2.imencode(".jpg", draw_shape(SHAPE_LABELS[i % len(SHAPE_LABELS)], (480, 640), rng))[
                1
            ].tobytes()
            for i in range(count)
        ]
    root = Path(folder)
    if not root.is_dir():
        raise ServerBenchError(f"{folder}: not a folder")
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    data = [p.read_bytes() for p in files[:MAX_PAYLOADS]]
    if not data:
        raise ServerBenchError(f"{folder}: no files to send")
    return data


def bench_command(
    url: str,
    models: Sequence[str],
    images: str | None,
    concurrency: int,
    requests: int | None,
    duration: float | None,
    api_key_file: str | None,
    json_out: str | None,
) -> dict[str, Any]:
    """``edgecnn bench --server``: measure, and write the JSON report if asked."""
    from edgecnn.tools.report_files import write_json

    if len(models) > 1:
        raise ServerBenchError("with --server, give at most one MODEL: the served model's name")
    api_key = None
    if api_key_file:
        try:
            api_key = Path(api_key_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ServerBenchError(f"--api-key-file {api_key_file}: cannot read: {exc}") from None
    report = measure_server(
        url,
        payloads(images),
        concurrency=concurrency,
        requests=requests,
        duration=duration,
        model=models[0] if models else None,
        api_key=api_key,
    )
    if json_out:
        write_json(json_out, report, "--json")
    return report
