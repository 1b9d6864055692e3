"""The KServe v2 (Open Inference Protocol) subset Triton clients speak, in its JSON form.

``POST /v2/models/{name}/infer`` takes one input, either

- ``BYTES`` of shape ``[N]``: N encoded images (JPEG, PNG, ...), each a base64 string or a
  ``{"b64": "..."}`` object (as TF Serving writes it); decoded by the model's own
  preprocessing, exactly like ``/v1`` uploads; or
- ``UINT8`` of shape ``[N, H, W, C]`` equal to the model's input: already-prepared pixels in the
  model's colour order, fed to the model as they are;

and answers the outputs ``probabilities`` (FP32 ``[N, classes]``) and ``label`` (BYTES ``[N]``).
Triton's binary-tensor extension is not supported. Parsing runs in a worker thread: a JSON
tensor of a few images is tens of thousands of numbers and must not stall the event loop.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn._version import __version__
from edgecnn.serve.http_errors import ServeError
from edgecnn.serve.uploads import Upload
from edgecnn.spec import ModelSpec

OUTPUTS = ("probabilities", "label")


@dataclass(frozen=True)
class InferRequest:
    """A parsed infer request: encoded images (BYTES) or a prepared uint8 batch (UINT8)."""

    id: str | None
    outputs: tuple[str, ...]
    uploads: list[Upload] | None = None
    tensor: np.ndarray | None = None

    @property
    def count(self) -> int:
        """Images in the request."""
        return len(self.uploads) if self.uploads is not None else len(self.tensor)


def server_metadata() -> dict[str, Any]:
    """``GET /v2``."""
    return {"name": "edgecnn", "version": __version__, "extensions": []}


def model_metadata(name: str, spec: ModelSpec, platform: str) -> dict[str, Any]:
    """``GET /v2/models/{name}``: inputs (both forms), outputs, labels and the input spec."""
    shape = [-1, *spec.input.shape]
    return {
        "name": name,
        "versions": ["1"],
        "platform": platform,
        "inputs": [
            {"name": "image", "datatype": "UINT8", "shape": shape},
            {"name": "image_bytes", "datatype": "BYTES", "shape": [-1]},
        ],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, spec.num_classes]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
        ],
        "parameters": {
            "labels": list(spec.labels),
            "input": spec.to_dict()["input"],
            "precision": spec.precision,
        },
    }


def _bad(message: str) -> ServeError:
    return ServeError("bad_request", message)


def parse_infer(body: bytes, spec: ModelSpec, max_images: int) -> InferRequest:
    """Validate an infer request body; every problem is a 400 naming the field."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _bad("the request body must be a JSON object with 'inputs'")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise _bad("'inputs' must be a list holding exactly one input object (the image)")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _bad("'id' must be a string")
    outputs = _requested_outputs(doc.get("outputs"))
    tensor = inputs[0]
    name, datatype, shape, data = (tensor.get(k) for k in ("name", "datatype", "shape", "data"))
    if not isinstance(name, str):
        raise _bad("the input needs a 'name' string")
    if not (isinstance(shape, list) and shape and all(_is_int(d) and d >= 0 for d in shape)):
        raise _bad(f"input {name!r}: 'shape' must be a non-empty list of non-negative integers")
    if not isinstance(data, list):
        raise _bad(f"input {name!r}: 'data' must be a list")
    if shape[0] < 1:
        raise _bad(f"input {name!r}: the batch dimension is 0")
    if shape[0] > max_images:
        raise ServeError(
            "too_large", f"input {name!r}: {shape[0]} images in one request, limit {max_images}"
        )
    if datatype == "BYTES":
        uploads = _bytes_input(name, shape, data)
        return InferRequest(request_id, outputs, uploads=uploads)
    if datatype == "UINT8":
        return InferRequest(request_id, outputs, tensor=_uint8_input(name, shape, data, spec))
    raise _bad(
        f"input {name!r}: datatype {datatype!r} is not supported; use BYTES (encoded images) "
        "or UINT8 (prepared pixels)"
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _requested_outputs(outputs: object) -> tuple[str, ...]:
    if outputs is None:
        return OUTPUTS
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise _bad("'outputs' must be a list of objects with a 'name'")
    names = tuple(o.get("name") for o in outputs)
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown:
        raise _bad(f"unknown output(s) {unknown}; this model has {list(OUTPUTS)}")
    return names or OUTPUTS


def _bytes_input(name: str, shape: list[int], data: list[Any]) -> list[Upload]:
    if len(shape) != 1 and not (len(shape) == 2 and shape[1] == 1):
        raise _bad(f"input {name!r}: a BYTES input of images has shape [N], not {shape}")
    if data and all(isinstance(row, list) for row in data):  # [[b64], [b64]] for shape [N, 1]
        data = [item for row in data for item in row]
    if len(data) != shape[0]:
        raise _bad(f"input {name!r}: shape says {shape[0]} element(s), data has {len(data)}")
    uploads = []
    for i, item in enumerate(data):
        text = item.get("b64") if isinstance(item, dict) else item
        if not isinstance(text, str):
            raise _bad(f"input {name!r}[{i}]: expected a base64 string or {{'b64': '...'}}")
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise _bad(f"input {name!r}[{i}]: not valid base64") from None
        uploads.append(Upload(f"{name}[{i}]", raw))
    return uploads


def _uint8_input(name: str, shape: list[int], data: list[Any], spec: ModelSpec) -> np.ndarray:
    expected = [shape[0], *spec.input.shape]
    if shape != expected:
        raise _bad(f"input {name!r}: UINT8 shape {shape} does not match the model's {expected}")
    try:
        values = np.asarray(data)
    except ValueError:  # ragged nested lists
        raise _bad(f"input {name!r}: 'data' is not a regular array") from None
    if values.size != math.prod(shape):
        raise _bad(f"input {name!r}: shape needs {math.prod(shape)} values, data has {values.size}")
    if values.dtype.kind not in "iu":
        raise _bad(f"input {name!r}: UINT8 data must be integers, got {values.dtype.kind!r} data")
    if values.size and (values.min() < 0 or values.max() > 255):
        raise _bad(f"input {name!r}: UINT8 values must be within 0..255")
    return values.astype(np.uint8).reshape(shape)


def infer_response(
    name: str, request: InferRequest, probabilities: np.ndarray, labels: list[str]
) -> dict[str, Any]:
    """The infer answer: the requested outputs, row-major data, as KServe v2 JSON."""
    outputs = []
    for output in request.outputs:
        if output == "probabilities":
            outputs.append(
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": list(probabilities.shape),
                    "data": [round(float(v), 6) for v in probabilities.ravel()],
                }
            )
        else:
            outputs.append(
                {"name": "label", "datatype": "BYTES", "shape": [len(labels)], "data": labels}
            )
    answer: dict[str, Any] = {"model_name": name, "model_version": "1", "outputs": outputs}
    if request.id is not None:
        answer["id"] = request.id
    return answer
