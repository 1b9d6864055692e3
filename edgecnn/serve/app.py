"""The ASGI application: routes, the request gate (auth, metrics), timeouts and JSON errors.

Per request, the event loop only reads the body (under a size limit and the request timeout)
and writes the answer; decoding runs in a thread pool and inference in each model's
:class:`~edgecnn.serve.micro_batcher.MicroBatcher` thread. So a slow client holds a connection,
never a worker, and one bad upload costs one 4xx answer, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from edgecnn.classify.result_files import record
from edgecnn.runtime.batch_pipeline import Loaded, load_one
from edgecnn.runtime.prediction import Prediction
from edgecnn.serve import kserve_v2
from edgecnn.serve.http_errors import ServeError
from edgecnn.serve.metrics import CONTENT_TYPE, ServeMetrics
from edgecnn.serve.micro_batcher import MicroBatcher, QueueFull
from edgecnn.serve.openapi import docs_page, openapi_spec
from edgecnn.serve.request_gate import RequestGate, error_handlers
from edgecnn.serve.served_models import LoadedModel
from edgecnn.serve.uploads import BodyBudget, Upload, image_uploads, parse_top_k, read_body
from edgecnn.tools.machine import available_cores

log = logging.getLogger("edgecnn.serve")

#: paths answered without the API key: health probes and the API description
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/docs", "/openapi.json"})


#: a tiny valid JPEG decoded once per model at start-up
_WARMUP_JPEG = bytes(cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1])


@dataclass(frozen=True)
class ServeSettings:
    """How the server batches, bounds and protects its work (see ``edgecnn serve --help``)."""

    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256
    workers: int | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    #: request bodies held at once, all requests together (beyond: 503)
    max_buffered_bytes: int = 256 * 1024 * 1024
    request_timeout_s: float = 30.0
    api_key: str | None = None


@dataclass
class _Served:
    model: LoadedModel
    batcher: MicroBatcher


class _Service:
    """The state of one running server and its endpoint handlers."""

    def __init__(
        self,
        models: Sequence[LoadedModel],
        settings: ServeSettings,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        if not models:
            raise ValueError("a server needs at least one model")
        self.settings = settings
        self.metrics = ServeMetrics()
        self.models: dict[str, _Served] = {}
        for model in models:
            batcher = MicroBatcher(
                model.classifier,
                max_batch=settings.max_batch,
                max_wait_ms=settings.max_wait_ms,
                max_queue=settings.max_queue,
                observer=self.metrics.batch_observer(model.name),
            )
            self.models[model.name] = _Served(model, batcher)
            self.metrics.add_model(model.name, model.load_seconds, lambda b=batcher: b.in_flight)
        self.default = models[0].name
        self.workers = settings.workers or available_cores()
        self.pool: ThreadPoolExecutor | None = None
        self.bodies = BodyBudget(settings.max_buffered_bytes)
        self.metrics.body_bytes.set_function(lambda: self.bodies.used)
        self.ready = False
        self._on_ready = on_ready
        self.spec = openapi_spec(list(self.models), auth=settings.api_key is not None)

    # ----------------------------------------------------------------- lifecycle
    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="edgecnn-decode")
        loop = asyncio.get_running_loop()
        for served in self.models.values():
            await served.batcher.start()
            # the first decode initialises OpenCV's codecs: not on a client's time
            spec = served.model.classifier.spec.input
            await loop.run_in_executor(self.pool, load_one, _WARMUP_JPEG, spec)
        self.ready = True
        if self._on_ready is not None:
            self._on_ready()
        try:
            yield
        finally:  # uvicorn has drained the in-flight requests by now
            self.ready = False
            for served in self.models.values():
                await served.batcher.stop()
            self.pool.shutdown(wait=True)

    # ----------------------------------------------------------------- helpers
    def _served(self, name: str | None) -> _Served:
        served = self.models.get(name or self.default)
        if served is None:
            raise ServeError(
                "not_found", f"no model named {name!r}; served: {', '.join(self.models)}"
            )
        return served

    def _admit(self, served: _Served, count: int) -> Any:
        if count > served.batcher.max_queue:
            raise ServeError(
                "too_large", f"{count} images in one request, limit {served.batcher.max_queue}"
            )
        try:
            return served.batcher.admit(count)
        except QueueFull as exc:
            raise ServeError("queue_full", f"server busy: {exc}", {"Retry-After": "1"}) from None

    async def _body(self, request: Request) -> bytes:
        body = await read_body(request, self.settings.max_body_bytes, self.bodies)
        request.state.phase = "work"
        return body

    async def _predict(
        self, served: _Served, uploads: list[Upload], top_k: int
    ) -> list[Prediction]:
        """Decode in the pool, infer in a shared batch, and build one prediction per upload."""
        classifier = served.model.classifier
        spec = classifier.spec.input
        ticket = self._admit(served, len(uploads))
        try:
            loop = asyncio.get_running_loop()
            loaded: list[Loaded]
            if len(uploads) == 1:  # the common case, without gather's extra task
                loaded = [await loop.run_in_executor(self.pool, load_one, uploads[0].data, spec)]
            else:
                loaded = list(
                    await asyncio.gather(
                        *(loop.run_in_executor(self.pool, load_one, u.data, spec) for u in uploads)
                    )
                )
            good = [x.array for x in loaded if x.array is not None]
            probs, share_ms = await ticket.infer(good)  # type: ignore[arg-type]
        finally:
            ticket.release()
        rows = iter(probs)
        predictions = []
        for upload, item in zip(uploads, loaded, strict=True):
            if item.array is None:
                predictions.append(Prediction(upload.name, error=item.error, timings=item.timings))
                continue
            t0 = time.perf_counter()
            top = classifier.top(next(rows), top_k)
            timings = dict(item.timings, inference=share_ms)
            timings["postprocess"] = (time.perf_counter() - t0) * 1e3
            predictions.append(Prediction(upload.name, top=top, timings=timings))
        failed = sum(not p.ok for p in predictions)
        self.metrics.images_answered(served.model.name, len(predictions) - failed, failed)
        return predictions

    # ----------------------------------------------------------------- v1
    async def classify(self, request: Request) -> Response:
        """POST /v1/classify and /v1/models/{name}/classify."""
        served = self._served(request.path_params.get("name"))
        top_k = parse_top_k(request, served.model.classifier.spec.num_classes)
        body = await self._body(request)
        uploads = await image_uploads(request, body, max_files=served.batcher.max_queue)
        predictions = await self._predict(served, uploads, top_k)
        answer = {"model": served.model.name, "results": [record(p, top_k) for p in predictions]}
        failed = [p for p in predictions if not p.ok]
        if failed:
            message = f"{len(failed)} of {len(predictions)} image(s) could not be read: "
            raise ServeError("bad_image", message + str(failed[0].error), body=answer)
        return JSONResponse(answer)

    async def list_models(self, request: Request) -> Response:
        """GET /v1/models."""
        return JSONResponse(
            {
                "default": self.default,
                "models": [
                    {
                        "name": name,
                        "labels": list(s.model.classifier.labels),
                        "input": s.model.classifier.spec.to_dict()["input"],
                        "precision": s.model.classifier.spec.precision,
                        "provider": s.model.classifier.provider,
                        "load_seconds": round(s.model.load_seconds, 4),
                    }
                    for name, s in self.models.items()
                ],
            }
        )

    # ----------------------------------------------------------------- v2
    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready_all(self, request: Request) -> Response:
        return JSONResponse({"ready": self.ready}, status_code=200 if self.ready else 503)

    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse(kserve_v2.server_metadata())

    async def model_metadata(self, request: Request) -> Response:
        served = self._served(request.path_params["name"])
        classifier = served.model.classifier
        meta = kserve_v2.model_metadata(served.model.name, classifier.spec, "onnxruntime_onnx")
        meta["parameters"]["provider"] = classifier.provider
        return JSONResponse(meta)

    async def model_ready(self, request: Request) -> Response:
        served = self._served(request.path_params["name"])
        ok = self.ready
        return JSONResponse(
            {"name": served.model.name, "ready": ok}, status_code=200 if ok else 503
        )

    async def infer(self, request: Request) -> Response:
        """POST /v2/models/{name}/infer."""
        served = self._served(request.path_params["name"])
        body = await self._body(request)
        spec = served.model.classifier.spec
        loop = asyncio.get_running_loop()
        parsed = await loop.run_in_executor(
            self.pool, kserve_v2.parse_infer, body, spec, served.batcher.max_queue
        )
        if parsed.uploads is not None:
            predictions = await self._predict(served, parsed.uploads, spec.num_classes)
            failed = [p for p in predictions if not p.ok]
            if failed:
                raise ServeError("bad_image", f"{failed[0].source}: {failed[0].error}")
            names = [p.label for p in predictions]
            probs = self._probabilities(served, predictions)
        else:
            ticket = self._admit(served, parsed.count)
            try:
                probs, _ = await ticket.infer(list(parsed.tensor))
            finally:
                ticket.release()
            names = [spec.labels[i] for i in probs.argmax(axis=1)]
            self.metrics.images_answered(served.model.name, len(names), 0)
        return JSONResponse(kserve_v2.infer_response(served.model.name, parsed, probs, names))

    @staticmethod
    def _probabilities(served: _Served, predictions: list[Prediction]) -> np.ndarray:
        """Every class's probability, from predictions made with top-k = all classes."""
        labels = served.model.classifier.labels
        index = {label: i for i, label in enumerate(labels)}
        probs = np.zeros((len(predictions), len(labels)), np.float32)
        for row, prediction in zip(probs, predictions, strict=True):
            for label, score in prediction.top:
                row[index[label]] = score
        return probs

    # ----------------------------------------------------------------- others
    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(self.spec)

    async def docs(self, request: Request) -> Response:
        return HTMLResponse(docs_page(self.spec))


_TIMEOUT_SCOPE = getattr(asyncio, "timeout", None)


def _with_timeout(
    handler: Callable[[Request], Awaitable[Response]],
    seconds: float,
    finish: Callable[[Request], None] | None = None,
) -> Callable[[Request], Awaitable[Response]]:
    """Bound a handler's time: 408 while the body is still arriving, 504 after. ``finish``
    runs when the request ends, however it ends (gives back its buffered body)."""

    async def guarded(request: Request) -> Response:
        request.state.phase = "body"
        try:
            if _TIMEOUT_SCOPE is None:  # Python 3.10: a task per request
                return await asyncio.wait_for(handler(request), seconds)
            async with _TIMEOUT_SCOPE(seconds):  # 3.11+: no extra task
                return await handler(request)
        except asyncio.TimeoutError:  # 3.10: not yet the builtin TimeoutError
            if request.state.phase == "body":
                raise ServeError(
                    "timeout_reading_body",
                    f"the request body did not arrive within {seconds:g} s",
                    {"Connection": "close"},  # the rest of the body is not wanted
                ) from None
            raise ServeError("timeout", f"the request took more than {seconds:g} s") from None
        finally:
            if finish is not None:
                finish(request)

    return guarded


def create_app(
    models: Sequence[LoadedModel],
    settings: ServeSettings | None = None,
    on_ready: Callable[[], None] | None = None,
) -> Starlette:
    """The ASGI app serving ``models`` (the first is the default); run it with uvicorn.
    ``on_ready`` is called once the app has started (models loaded, batchers running)."""
    settings = settings or ServeSettings()
    service = _Service(models, settings, on_ready)
    timed = {
        name: _with_timeout(
            getattr(service, name), settings.request_timeout_s, service.bodies.release
        )
        for name in ("classify", "infer")
    }
    routes = [
        Route("/v1/classify", timed["classify"], methods=["POST"]),
        Route("/v1/models/{name}/classify", timed["classify"], methods=["POST"]),
        Route("/v1/models", service.list_models, methods=["GET"]),
        Route("/v2", service.server_metadata, methods=["GET"]),
        Route("/v2/health/live", service.live, methods=["GET"]),
        Route("/v2/health/ready", service.ready_all, methods=["GET"]),
        Route("/v2/models/{name}", service.model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", service.model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", timed["infer"], methods=["POST"]),
        Route("/metrics", service.metrics_text, methods=["GET"]),
        Route("/openapi.json", service.openapi, methods=["GET"]),
        Route("/docs", service.docs, methods=["GET"]),
    ]
    gate = Middleware(
        RequestGate, metrics=service.metrics, api_key=settings.api_key, open_paths=OPEN_PATHS
    )
    return Starlette(
        routes=routes,
        middleware=[gate],
        exception_handlers=error_handlers(service.metrics),
        lifespan=service.lifespan,
    )
