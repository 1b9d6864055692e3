"""The OpenAPI 3 description of the server (``/openapi.json``) and a self-contained ``/docs`` page.

Written out by hand, so it says exactly what the handlers do; the docs page is rendered from
it on the server (no JavaScript from a CDN: edge boxes are often offline).
"""

from __future__ import annotations

import html
from typing import Any

from edgecnn._version import __version__

_ERROR = {"description": "JSON error: {error, kind}", "content": {"application/json": {}}}
_IMAGE_BODY = {
    "required": True,
    "content": {
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {"type": "array", "items": {"type": "string", "format": "binary"}}
                },
            }
        },
    },
}
_TOP_K = {"name": "top_k", "in": "query", "schema": {"type": "integer", "minimum": 1}}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


def _op(summary: str, params: list[dict[str, Any]] | None = None, body: bool = False) -> dict:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {}}},
            "4XX": _ERROR,
            "503": {**_ERROR, "description": "queue full (Retry-After) or shutting down"},
        },
    }
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = _IMAGE_BODY
    return op


def openapi_spec(models: list[str], auth: bool) -> dict[str, Any]:
    """The OpenAPI document for a server holding ``models``."""
    classify = (
        "Classify the image(s) in the body; one classify row per image in 'results' "
        "(422 when an image cannot be read, with the rows)."
    )
    infer_body = {
        "required": True,
        "content": {"application/json": {"example": {"inputs": [{
            "name": "image_bytes", "shape": [1], "datatype": "BYTES", "data": ["<base64>"]}]}}},
    }  # fmt: skip
    infer = _op("KServe v2 inference: BYTES (encoded images) or UINT8 [N,H,W,C] input.", [_NAME])
    infer["requestBody"] = infer_body
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "edgecnn serve",
            "version": __version__,
            "description": f"Image classification. Models: {', '.join(models)} "
            f"(default: {models[0]}).",
        },
        "paths": {
            "/v1/classify": {"post": _op(classify + " Default model.", [_TOP_K], body=True)},
            "/v1/models/{name}/classify": {"post": _op(classify, [_NAME, _TOP_K], body=True)},
            "/v1/models": {"get": _op("The served models, their labels and input specs.")},
            "/v2": {"get": _op("KServe v2 server metadata.")},
            "/v2/health/live": {"get": _op("Liveness: the process answers.")},
            "/v2/health/ready": {"get": _op("Readiness: every model is loaded (503 if not).")},
            "/v2/models/{name}": {"get": _op("KServe v2 model metadata.", [_NAME])},
            "/v2/models/{name}/ready": {"get": _op("Readiness of one model.", [_NAME])},
            "/v2/models/{name}/infer": {"post": infer},
            "/metrics": {"get": _op("Prometheus metrics (text format).")},
        },
    }
    if auth:
        spec["components"] = {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
        spec["security"] = [{"bearer": []}]
    return spec


def docs_page(spec: dict[str, Any]) -> str:
    """A plain HTML rendering of ``spec``: every path, method, summary and parameters."""
    rows = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            params = ", ".join(p["name"] for p in op.get("parameters", []) if p["in"] == "query")
            types = ", ".join(op.get("requestBody", {}).get("content", {}))
            rows.append(
                f"<tr><td><b>{method.upper()}</b></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op['summary'])}</td><td>{html.escape(params)}</td>"
                f"<td>{html.escape(types)}</td></tr>"
            )
    info = spec["info"]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>edgecnn serve API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;"
        "border-bottom:1px solid #ddd;text-align:left}</style></head><body>"
        f"<h1>{html.escape(info['title'])} {html.escape(info['version'])}</h1>"
        f"<p>{html.escape(info['description'])}</p>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1).</p>"
        "<table><tr><th>method</th><th>path</th><th>what</th><th>query</th><th>body</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
