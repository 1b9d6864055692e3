"""ServeError: an expected failure of one request, answered as a JSON error with its status.

The body is ``{"error": "<one line>", "kind": "<machine-readable kind>"}`` (``error`` is what
KServe v2 clients read). Kinds are a closed set, so they can label metrics.
"""

from __future__ import annotations

#: kind -> HTTP status
KINDS = {
    "bad_request": 400,
    "bad_image": 422,
    "unauthorized": 401,
    "not_found": 404,
    "method_not_allowed": 405,
    "timeout_reading_body": 408,
    "too_large": 413,
    "unsupported_media_type": 415,
    "internal": 500,
    "queue_full": 503,
    "shutting_down": 503,
    "timeout": 504,
}


class ServeError(Exception):
    """A request the server refuses or cannot finish; ``kind`` is one of :data:`KINDS`."""

    def __init__(
        self,
        kind: str,
        message: str,
        headers: dict[str, str] | None = None,
        body: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = KINDS[kind]
        self.message = message
        self.headers = headers or {}
        #: extra JSON fields (e.g. the per-image rows of a request whose images all failed)
        self.body = body or {}

    def payload(self) -> dict[str, object]:
        """The JSON body of the error answer."""
        return {"error": self.message, "kind": self.kind, **self.body}
