"""The server's Prometheus metrics: requests, latency, queue time, batch sizes, images/s, errors.

Every server owns its own :class:`~prometheus_client.CollectorRegistry` (no process-wide
state), rendered in the Prometheus text format at ``GET /metrics``. Names follow Prometheus
conventions (``_total`` counters, ``_seconds`` histograms); ``model`` and ``endpoint`` labels
take only values the server chose (model names, route templates), never client input.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: images/s is reported over this sliding window (seconds)
RATE_WINDOW_S = 10.0

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
_QUEUE_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class _Rate:
    """Events per second over the last :data:`RATE_WINDOW_S` seconds."""

    def __init__(self) -> None:
        self._events: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._events.append((now, count))
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._events and self._events[0][0] < now - RATE_WINDOW_S:
            self._events.popleft()

    def per_second(self) -> float:
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            return sum(count for _, count in self._events) / RATE_WINDOW_S


class ServeMetrics:
    """The metric families of one server, with small methods the app and batchers call."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "edgecnn_requests", "HTTP requests by endpoint and status code.",
            ["endpoint", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "edgecnn_request_duration_seconds", "Request latency, body read to response sent.",
            ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.in_progress = Gauge(
            "edgecnn_requests_in_progress", "Requests being served now.", registry=r
        )
        self.queue_time = Histogram(
            "edgecnn_queue_seconds", "Time a decoded job waited for its batch to start.",
            ["model"], buckets=_QUEUE_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "edgecnn_batch_size", "Images per inference call.",
            ["model"], buckets=_BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.inference_time = Histogram(
            "edgecnn_inference_seconds", "Time of one batched inference call.",
            ["model"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.images = Counter(
            "edgecnn_images", "Images answered, by model and status (ok / error).",
            ["model", "status"], registry=r,
        )  # fmt: skip
        self.images_per_second = Gauge(
            "edgecnn_images_per_second",
            f"Images classified per second over the last {RATE_WINDOW_S:g} s.",
            ["model"], registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "edgecnn_errors", "Error answers by kind (bad_image, too_large, queue_full, ...).",
            ["kind"], registry=r,
        )  # fmt: skip
        self.load_time = Gauge(
            "edgecnn_model_load_seconds", "Time to load each model (session creation).",
            ["model"], registry=r,
        )  # fmt: skip
        self.in_flight = Gauge(
            "edgecnn_images_in_flight", "Images admitted and not answered (the bounded queue).",
            ["model"], registry=r,
        )  # fmt: skip
        self.body_bytes = Gauge(
            "edgecnn_body_bytes_buffered", "Bytes of request bodies held now (all requests).",
            registry=r,
        )  # fmt: skip
        self._rates: dict[str, _Rate] = {}

    def add_model(self, name: str, load_seconds: float, in_flight: Callable[[], float]) -> None:
        """Register a served model: its load time and a live view of its queue."""
        self.load_time.labels(model=name).set(load_seconds)
        self.in_flight.labels(model=name).set_function(in_flight)
        rate = self._rates[name] = _Rate()
        self.images_per_second.labels(model=name).set_function(rate.per_second)
        for status in ("ok", "error"):
            self.images.labels(model=name, status=status)  # show zeros before traffic

    def batch_observer(self, name: str) -> Callable[[int, list[float], float], None]:
        """The callback a model's micro-batcher calls after every batch."""
        batch_size = self.batch_size.labels(model=name)
        queue_time = self.queue_time.labels(model=name)
        inference_time = self.inference_time.labels(model=name)

        def observe(size: int, queued: list[float], seconds: float) -> None:
            batch_size.observe(size)
            inference_time.observe(seconds)
            for value in queued:
                queue_time.observe(value)

        return observe

    def images_answered(self, name: str, ok: int, failed: int) -> None:
        """Count the images of one answered request."""
        if ok:
            self.images.labels(model=name, status="ok").inc(ok)
            self._rates[name].add(ok)
        if failed:
            self.images.labels(model=name, status="error").inc(failed)

    def request_done(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
