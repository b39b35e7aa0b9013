"""KServe's v1 and v2 inference protocols, spoken by our handlers under TorchServe's envelopes.

KServe's TorchServe runtime starts TorchServe with `TS_SERVICE_ENVELOPE=kserve` (protocol v1)
or `kservev2` (v2). TorchServe 0.12's stock envelopes cannot carry our answers: both read only
the first request of a batch (pytorch/serve#1302, #2158), v1 has no per-instance error and
needs JSON-able handler output, and v2 names output i after input i, flattens every output
and cannot return several outputs for one input. So `take_over_envelopes()` (called by the
handler's `initialize`) makes the stock envelopes hand the raw batch to our batch loop
(`exformer.serving.handler`), tagged with its protocol, and pass our answers through unchanged; the
protocol itself lives here:

v1  `POST /v1/models/<name>:predict` (or `:explain`) `{"instances": [request, ...]}` →
    `{"predictions": [answer, ...]}` (`"explanations"` for :explain), one answer per instance,
    in order. An instance is one of our request objects (a bare string means `{"text": s}`).
    A bad instance answers `{"error": {"code", "type", "message", "field"}}` in its place and
    the others are still answered; the status is 200 when at least one instance was answered,
    otherwise the first error's status.
v2  `POST /v2/models/<name>/infer` `{"id", "inputs": [...]}`, either one BYTES input (any name
    that is not a request field, e.g. "request") whose one element is the JSON request, or
    inputs named after request fields (`text` BYTES [1], `top_k` INT64 [1], `mask` INT64 [k],
    ...). One request per call. Tensors answer as typed outputs with their shape (attention
    FP32, or FP16 with `"encoding": "float16-base64"`); every other summary field is an output
    too: numbers and flags as INT64/FP64/BOOL, strings as BYTES, structured fields (tokens,
    model, prediction, target, ...) as one BYTES element holding their JSON.

Both answer JSON only: a gradients request with `"format": "npz"`/`"torch-gzip"` is refused
(naming `format`); TorchServe's own /predictions endpoint still serves those.
"""

import logging
from typing import Any

import numpy as np
import orjson

from ..contract.arrays import decode_array, decode_index_array
from ..contract.errors import RequestError
from ..contract.parsing import decode_body

logger = logging.getLogger(__name__)
JSON = "application/json"


class Enveloped(list):
    """A TorchServe batch whose rows are KServe requests of `protocol` ("v1" or "v2")."""

    def __init__(self, protocol: str, rows):
        super().__init__(rows)
        self.protocol = protocol


def take_over_envelopes() -> bool:
    """Make TorchServe's kserve/kservev2 envelopes pass rows and answers through untouched.

    TorchServe wraps the handler's `handle` in the envelope before `initialize` runs and calls
    `parse_input`/`format_output` through the instance, so replacing them on the classes (in
    this worker process, which serves only this model) is enough. Returns False without
    TorchServe (in-process use)."""
    try:
        from ts.torch_handler.request_envelope.kserve import KServeEnvelope
        from ts.torch_handler.request_envelope.kservev2 import KServev2Envelope
    except ImportError:
        return False
    KServeEnvelope.parse_input = lambda self, rows: Enveloped("v1", rows)
    KServev2Envelope.parse_input = lambda self, rows: Enveloped("v2", rows)
    KServeEnvelope.format_output = KServev2Envelope.format_output = lambda self, answers: answers
    return True


def error_json(error: RequestError) -> dict:
    """Our error object, plus KServe's `error` key (its clients show that message)."""
    return {"error": error.message, **error.to_json()}


# --- v1 -----------------------------------------------------------------------------------------

MAX_INSTANCES = 64  # requests in one v1 body: each is explained in the same batch, under one deadline


def v1_instances(body) -> list:
    """The request bodies of a v1 `{"instances": [...]}` body."""
    body = decode_body(body)
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        got = "nothing" if instances is None else orjson.dumps(instances).decode()[:80]
        raise RequestError("instances", f"must be a non-empty list of requests, got {got}")
    if len(instances) > MAX_INSTANCES:
        raise RequestError(
            "instances",
            f"has {len(instances)} requests; at most {MAX_INSTANCES} in one body (a fixed "
            "limit: they share one batch and one deadline); send several bodies",
        )
    return [{"text": item} if isinstance(item, str) else item for item in instances]


def v1_answer(answers: list, explain: bool) -> tuple[bytes, int]:
    """(body, status) for one v1 request: each answer a JSON-able result or an error dict."""
    errors = [a["error"] for a in answers if isinstance(a, dict) and set(a) == {"error"}]
    status = errors[0]["code"] if len(errors) == len(answers) else 200
    key = "explanations" if explain else "predictions"
    return orjson.dumps({key: answers}, option=orjson.OPT_SERIALIZE_NUMPY), status


# --- v2 -----------------------------------------------------------------------------------------

_NUMERIC = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"}


def v2_request(body, fields: set[str]) -> tuple[dict, str | None]:
    """(our request body, the v2 request id) from a v2 infer body."""
    body = decode_body(body)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("inputs", "must be a non-empty list of {name, shape, datatype, data}")
    request_id = body.get("id") if isinstance(body.get("id"), str) else None
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str) or not tensor.get("datatype"):
            raise RequestError(f"inputs[{i}]", "must have a name, a datatype, a shape and data")
        if not isinstance(tensor.get("data"), list):
            raise RequestError(f"inputs[{i}].data", "must be a list")
    if len(inputs) == 1 and inputs[0]["name"] not in fields:  # one BYTES input holding the JSON request
        tensor = inputs[0]
        if tensor["datatype"] != "BYTES":
            raise RequestError("inputs[0].datatype", f"must be BYTES (the JSON request), got {tensor['datatype']!r}")
        if len(tensor["data"]) != 1:
            raise RequestError("inputs[0].data", f"one JSON request per inference call, got {len(tensor['data'])}")
        return decode_body(_text(tensor["data"][0], "inputs[0].data")), request_id
    request: dict[str, Any] = {}
    for i, tensor in enumerate(inputs):  # inputs named after request fields
        name, datatype, data = tensor["name"], tensor["datatype"], tensor["data"]
        if datatype == "BYTES":
            if len(data) != 1:
                raise RequestError(name, f"a BYTES input holds one string, got {len(data)} elements")
            request[name] = _text(data[0], name)
        elif datatype in _NUMERIC:
            flat = np.asarray(data).reshape(-1).tolist()
            request[name] = flat[0] if tensor.get("shape") in ([1], []) and len(flat) == 1 else flat
        else:
            raise RequestError(f"inputs[{i}].datatype", f"unknown datatype {datatype!r}")
    return request, request_id


def _text(value, field: str) -> str:
    if isinstance(value, str):
        return value
    raise RequestError(field, f"a BYTES element must be a string, got {type(value).__name__}")


def v2_answer(result: dict, model: dict, request_id: str | None) -> bytes:
    """A v2 infer response: every field of `result` (a response dict) as an output."""
    outputs = []
    for name, value in result.items():
        outputs.extend(_outputs(name, value))
    return orjson.dumps(
        {"id": request_id or "", "model_name": model["name"], "model_version": model["version"], "outputs": outputs},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def _tensor(name: str, array: np.ndarray) -> dict:
    datatype = {
        "float16": "FP16",
        "float32": "FP32",
        "float64": "FP64",
        "int64": "INT64",
        "int32": "INT32",
        "bool": "BOOL",
    }[array.dtype.name]
    data = array.reshape(-1)
    if datatype == "FP16":  # orjson writes float16 arrays as numbers too, but not everywhere
        data = data.astype(np.float32)
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def _outputs(name: str, value) -> list[dict]:
    if value is None:
        return []
    if isinstance(value, dict) and value.get("encoding") == "topk-per-row":  # sparse rows: each array an output
        return [o for key, v in value.items() for o in _outputs(f"{name}.{key}", v)]
    if isinstance(value, dict) and "encoding" in value and "shape" in value:  # an encoded tensor
        extra = [
            o
            for key, v in value.items()
            if key not in ("encoding", "shape", "data", "dtype", "byteorder")
            for o in _outputs(f"{name}.{key}", v)
        ]
        return [_tensor(name, _decode_array(value)), *extra]
    if isinstance(value, np.ndarray):
        return [_tensor(name, value)]
    if isinstance(value, bool):
        return [_tensor(name, np.array([value]))]
    if isinstance(value, int):
        return [_tensor(name, np.array([value], dtype=np.int64))]
    if isinstance(value, float):
        return [_tensor(name, np.array([value], dtype=np.float64))]
    if isinstance(value, str):
        return [{"name": name, "datatype": "BYTES", "shape": [1], "data": [value]}]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        ints = all(isinstance(v, int) for v in value)
        return [_tensor(name, np.array(value, dtype=np.int64 if ints else np.float64))]
    if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        parts = [_outputs(f"{name}.{key}", v) for key, v in value.items()]
        if all(len(p) == 1 and p[0]["datatype"] != "BYTES" for p in parts):  # e.g. attributions.raw/.normalized
            return [p[0] for p in parts]
    text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()  # structured: its JSON
    return [{"name": name, "datatype": "BYTES", "shape": [1], "data": [text]}]


def _decode_array(encoded: dict) -> np.ndarray:
    """An encoded block back to its array: float32 for json values, float16 for float16-base64
    (v2 answers FP16 as FP16), int64 for a sparse answer's column indices."""
    if encoded["encoding"] == "base64" or (
        encoded["encoding"] == "json" and np.asarray(encoded["data"]).dtype.kind in "iu"
    ):
        return decode_index_array(encoded)
    return decode_array(encoded, widen=False)
