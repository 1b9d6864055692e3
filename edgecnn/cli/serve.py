"""``edgecnn serve``: classify over HTTP, with adaptive batching, metrics and the KServe v2 API."""

from __future__ import annotations

import os
import signal
import sys

import click

from edgecnn.errors import EdgecnnError, MissingDependencyError
from edgecnn.runtime.engines.base import PROVIDERS


def _read_api_key(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            key = fh.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgecnnError(f"--api-key-file {path}: cannot read: {exc}") from None
    if not key or any(c.isspace() for c in key):
        raise EdgecnnError(f"--api-key-file {path}: must hold one key without spaces")
    return key


@click.command()
@click.argument("models", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--provider", type=click.Choice(PROVIDERS), default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="onnxruntime threads per model.")
@click.option(
    "--max-batch",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Most images in one batched inference call.",
)
@click.option(
    "--max-wait-ms",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Longest a batch waits for images still being decoded.",
)
@click.option(
    "--max-queue",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Images in flight per model; beyond it requests get 503 + Retry-After.",
)
@click.option("--workers", type=click.IntRange(min=1), help="Decode threads [default: cores].")
@click.option(
    "--api-key-file",
    type=click.Path(dir_okay=False),
    help="File holding a key; requests then need 'Authorization: Bearer KEY'.",
)
@click.option(
    "--max-body-mb",
    type=click.FloatRange(min=0.001),
    default=16.0,
    show_default=True,
    help="Largest request body.",
)
@click.option(
    "--max-buffer-mb",
    type=click.FloatRange(min=0.001),
    default=256.0,
    show_default=True,
    help="Request bodies held at once, all requests together; beyond it: 503.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds one request may take, body upload included.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="uvicorn's log level.",
)
def serve(
    models: tuple[str, ...],
    host: str,
    port: int,
    provider: str,
    threads: int | None,
    max_batch: int,
    max_wait_ms: float,
    max_queue: int,
    workers: int | None,
    api_key_file: str | None,
    max_body_mb: float,
    max_buffer_mb: float,
    timeout: float,
    log_level: str,
) -> None:
    """Serve MODELS (.onnx files, or NAME=FILE; default: the bundled model) over HTTP.

    POST /v1/classify (default model) or /v1/models/NAME/classify with an image body
    (Content-Type: image/*) or multipart 'file' fields; KServe v2 at /v2; Prometheus metrics
    at /metrics; API docs at /docs. SIGTERM or Ctrl-C drains requests in flight, then stops.
    """
    _require_serve_extra()
    import cv2

    from edgecnn.serve.app import ServeSettings
    from edgecnn.serve.served_models import load_models
    from edgecnn.serve.server import bind, binds_all_interfaces, run

    _check_buffer(max_body_mb, max_buffer_mb)
    api_key = _read_api_key(api_key_file) if api_key_file else None
    if binds_all_interfaces(host):
        _warn_all_interfaces(host, api_key is not None)
    settings = ServeSettings(
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        workers=workers,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        max_buffered_bytes=int(max_buffer_mb * 1024 * 1024),
        request_timeout_s=timeout,
        api_key=api_key,
    )
    sock = bind(host, port)  # before loading: a busy port fails fast
    loaded = load_models(list(models), provider=provider, threads=threads)
    cv2.setNumThreads(1)  # the decode threads are the parallelism; this process is the server
    names = ", ".join(f"{m.name} ({m.classifier.provider}, {m.load_seconds:.2f} s)" for m in loaded)

    def ready(url: str) -> None:
        click.echo(f"edgecnn serve: {names}; pid {os.getpid()}", err=True)
        click.echo(f"edgecnn serve: listening on {url} (API docs: {url}/docs)", err=True)

    stopped = run(loaded, settings, sock, on_ready=ready, log_level=log_level)
    click.echo("edgecnn serve: stopped (requests in flight were answered)", err=True)
    if signal.SIGINT in stopped.signals:
        sys.exit(130)


def _require_serve_extra() -> None:
    """One install hint when the serve extra (Starlette, uvicorn) is missing."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "starlette", "serve") from None


def _warn_all_interfaces(host: str, has_key: bool) -> None:
    """Say that every machine that can reach this one can use the models."""
    note = "" if has_key else "; consider --api-key-file"
    click.echo(
        f"warning: listening on all interfaces ({host or '*'}): anyone who can reach "
        f"this machine can use the models{note}",
        err=True,
    )


def _check_buffer(max_body_mb: float, max_buffer_mb: float) -> None:
    """All bodies buffered at once must leave room for one of the largest."""
    if max_buffer_mb < max_body_mb:
        raise click.BadParameter(
            f"{max_buffer_mb:g} is below --max-body-mb {max_body_mb:g}: a largest body would "
            "never fit",
            param_hint="--max-buffer-mb",
        )
