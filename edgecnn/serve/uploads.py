"""Reading uploads safely: the body under a size limit, then the images in it.

An image comes as the raw request body (``Content-Type: image/*`` or
``application/octet-stream``) or as one or more multipart ``file`` fields. Everything else is
refused with a :class:`~edgecnn.serve.http_errors.ServeError` before any decoding: a body over
the limit (413, checked against ``Content-Length`` first, then while streaming, so a lying or
chunked client cannot push more), another content type (415), a malformed multipart body (400).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from edgecnn.serve.http_errors import ServeError

#: multipart field that carries an image
FILE_FIELD = "file"
RAW_TYPES = ("image/", "application/octet-stream")


@dataclass(frozen=True)
class Upload:
    """One uploaded image: the name it is reported under and its encoded bytes."""

    name: str
    data: bytes


def media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters ('' when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


class BodyBudget:
    """Bytes of request bodies the server holds at once (all requests together).

    Without it, ``--max-body-mb`` x connections could be buffered at once. A request whose body
    does not fit is answered 503 + Retry-After while it is still arriving; what a request took is
    given back when it ends (:meth:`release`).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, request: Request, size: int) -> None:
        """Account ``size`` more bytes to ``request``, or raise 503 when they do not fit."""
        if self.used + size > self.limit:
            raise ServeError(
                "queue_full",
                f"server busy: {self.used:,} bytes of uploads in flight, limit {self.limit:,}",
                {"Retry-After": "1", "Connection": "close"},
            )
        self.used += size
        request.state.buffered = getattr(request.state, "buffered", 0) + size

    def release(self, request: Request) -> None:
        """Give back what ``request`` took (idempotent)."""
        self.used -= getattr(request.state, "buffered", 0)
        request.state.buffered = 0


async def read_body(request: Request, limit: int, budget: BodyBudget) -> bytes:
    """The whole body, refusing more than ``limit`` bytes (413) before or while reading it,
    and more than the server-wide ``budget`` holds (503)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ServeError("bad_request", f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise ServeError(
                "too_large",
                f"request body is {int(declared):,} bytes, over the {limit:,} limit",
                {"Connection": "close"},  # do not read (or wait for) the rest
            )
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ServeError(
                    "too_large",
                    f"request body is over the {limit:,} byte limit",
                    {"Connection": "close"},
                )
            budget.take(request, len(chunk))
            chunks.append(chunk)
    except ClientDisconnect:
        raise ServeError("bad_request", "the client disconnected before sending the body") from None
    return b"".join(chunks)


def parse_top_k(request: Request, num_classes: int) -> int:
    """``?top_k=`` (default 1): an integer from 1, capped at the model's class count."""
    text = request.query_params.get("top_k", "1")
    try:
        value = int(text)
    except ValueError:
        raise ServeError("bad_request", f"top_k={text!r} is not an integer") from None
    if value < 1:
        raise ServeError("bad_request", f"top_k must be >= 1, not {value}")
    return min(value, num_classes)


async def image_uploads(request: Request, body: bytes, max_files: int) -> list[Upload]:
    """The images of a classify request: the raw body, or every multipart ``file`` field."""
    kind = media_type(request)
    if kind.startswith(RAW_TYPES):
        return [Upload(f"<{len(body)} bytes>", body)]
    if kind != "multipart/form-data":
        shown = kind or "none"
        raise ServeError(
            "unsupported_media_type",
            f"Content-Type {shown} is not an image; send the image as the body with "
            f"Content-Type image/* (or application/octet-stream), or as multipart/form-data "
            f"'{FILE_FIELD}' fields",
        )
    return await _multipart(request, body, max_files)


async def _multipart(request: Request, body: bytes, max_files: int) -> list[Upload]:
    async def replay() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(request.headers, replay(), max_files=max_files, max_fields=16)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if exc.message.startswith("Too many files"):
            raise ServeError("too_large", f"more than {max_files} images in one request, "
                             "over the limit") from None  # fmt: skip
        raise ServeError("bad_request", f"malformed multipart body: {exc.message}") from None
    try:
        uploads = []
        for field, value in form.multi_items():
            if field != FILE_FIELD or not isinstance(value, UploadFile):
                raise ServeError(
                    "bad_request",
                    f"unexpected form field {field!r}; send images as '{FILE_FIELD}' file fields",
                )
            data = await value.read()
            uploads.append(Upload(value.filename or f"<{len(data)} bytes>", data))
    finally:
        await form.close()
    if not uploads:
        raise ServeError("bad_request", f"the multipart body has no '{FILE_FIELD}' field")
    return uploads
