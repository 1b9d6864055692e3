"""A small Python client for ``edgecnn serve`` (needs httpx: ``pip install 'edgecnn[serve]'``).

    from edgecnn.client import Client

    with Client("http://127.0.0.1:8000") as server:      # api_key="..." with --api-key-file
        rows = server.classify("photo.jpg", top_k=3)       # paths or encoded bytes, several ok
        print(rows[0]["label"], rows[0]["score"])

Each row has the fields of a ``classify`` JSON-lines row. An image the server cannot read comes
back as a row with ``status == "error"`` and its ``error``; other failures raise
:class:`ServerError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError, MissingDependencyError

try:
    import httpx
except ImportError:  # pragma: no cover - the serve extra brings httpx
    httpx = None

__all__ = ["Client", "ServerError"]


class ServerError(EdgecnnError):
    """The server refused or failed a request; ``status`` and ``kind`` say how."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"HTTP {status} ({kind}): {message}")
        self.status = status
        self.kind = kind


class Client:
    """Talk to one ``edgecnn serve``; reuses one keep-alive connection (thread-safe)."""

    def __init__(
        self, url: str = "http://127.0.0.1:8000", *, api_key: str | None = None, timeout: float = 30
    ) -> None:
        if httpx is None:
            raise MissingDependencyError("httpx", "serve")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._http.close()

    def classify(
        self,
        images: str | Path | bytes | Iterable[str | Path | bytes],
        *,
        model: str | None = None,
        top_k: int = 1,
    ) -> list[dict[str, Any]]:
        """Classify one or more images (file paths or encoded bytes) in one request."""
        items = [images] if isinstance(images, (str, Path, bytes)) else list(images)
        files = []
        for i, item in enumerate(items):
            if isinstance(item, bytes):
                files.append(("file", (f"image-{i}", item, "application/octet-stream")))
            else:
                with open(item, "rb") as fh:
                    data = fh.read()
                name = os.path.basename(os.fsdecode(item))
                files.append(("file", (name, data, "application/octet-stream")))
        path = f"/v1/models/{model}/classify" if model else "/v1/classify"
        answer = self._http.post(path, params={"top_k": top_k}, files=files)
        body = _json(answer)
        if answer.status_code == 422 and "results" in body:  # unreadable images: rows say why
            return body["results"]
        _raise_for(answer, body)
        return body["results"]

    def models(self) -> list[dict[str, Any]]:
        """The served models: name, labels, input spec, precision, provider."""
        answer = self._http.get("/v1/models")
        body = _json(answer)
        _raise_for(answer, body)
        return body["models"]

    def ready(self) -> bool:
        """True when the server is up and every model is loaded."""
        try:
            return self._http.get("/v2/health/ready").status_code == 200
        except httpx.TransportError:
            return False


def _json(answer: Any) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        raise ServerError(answer.status_code, "not_json", answer.text[:200]) from None
    return body if isinstance(body, dict) else {"error": str(body)}


def _raise_for(answer: Any, body: dict[str, Any]) -> None:
    if answer.status_code >= 400:
        raise ServerError(
            answer.status_code, str(body.get("kind", "error")), str(body.get("error", body))
        )
