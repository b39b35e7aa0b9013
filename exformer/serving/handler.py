"""TorchServe glue shared by both handlers: settings, device, the batch loop, errors,
KServe's protocols (`kserve.py`) and metrics (`metrics.py`).

A handler subclass says only which request model it parses, how to explain a batch of
parsed requests and how to encode one result; everything that explains lives in the core.
TorchServe is never imported here: it calls `initialize` and `handle` on our object.
"""

import ctypes
import ctypes.util
import logging
import os
import re
import time
import traceback
from pathlib import Path

import torch

from ..contract.errors import DeadlineError, RequestError
from ..contract.requests import GradientsRequest, TextRequest
from ..contract.settings import Settings
from ..core.cost import calibrated
from ..core.deadline import deadline
from ..core.loading import load_model
from ..core.sharding import plan_device_map
from ..explain.checks import parse_request
from ..explain.cost import cheaper_requests
from ..explain.encoding import json_bytes
from . import kserve
from .metrics import Metrics

logger = logging.getLogger(__name__)
JSON = "application/json"


JSON_MEDIA_TYPE = re.compile(r"application/json\s*(;.*)?", re.IGNORECASE | re.DOTALL)


def request_content_type(headers: dict) -> str | None:
    """The request's Content-Type header, as `context.get_all_request_header(idx)` holds it.

    TorchServe 0.12 hands over the HTTP headers spelled as the client sent them (`Content-Type`
    or `content-type`), beside one entry per body part that maps the part's name ("body", or a
    form field's) to `{"content-type": its media type}`; only the header, a string, counts.
    Its gRPC API passes no headers: None."""
    for name, value in (headers or {}).items():
        if isinstance(value, str) and name.lower() == "content-type":
            return value
    return None


def require_json(content_type: str | None) -> None:
    """Refuse (415) a request that does not say `application/json` (parameters allowed), before
    its body is read.

    Any web page can make a browser POST a text/plain, form or multipart body to another origin
    without asking first (a CORS "simple" request): CORS hides the answer, not the work. A JSON
    body makes the browser ask first (a preflight), which only config.properties'
    cors_allowed_origin passes. And curl -d without a header sends a form, which TorchServe
    splits into fields and URL-decodes ('+' → ' '), so the JSON would be lost or mangled.
    """
    if content_type is not None and JSON_MEDIA_TYPE.fullmatch(content_type.strip()):
        return
    media_type = (content_type or "").split(";")[0].strip()[:80]
    sent = f"{media_type} is not accepted" if media_type else "missing"
    raise RequestError(
        "Content-Type",
        f"{sent}; send the body as JSON with -H 'Content-Type: application/json' "
        "(curl -d without it sends application/x-www-form-urlencoded)",
        code=415,
    )


def request_body(row: dict):
    """The request body TorchServe hands over (once `require_json` passed it): the row's "body"."""
    if "body" in row or "data" in row:
        return row.get("body", row.get("data"))
    raise RequestError("body", "missing; send JSON with -H 'Content-Type: application/json'")


def worker_devices(properties: dict, per_worker: int) -> list:
    """TorchServe gives each worker a gpu_id when GPUs exist (from the model-config's
    deviceIds, if any); a worker given several takes that one and the next ones.
    CPU needs no configuration."""
    gpu_id = properties.get("gpu_id")
    if gpu_id is None or not torch.cuda.is_available():
        return ["cpu"]
    count = torch.cuda.device_count()
    return [(int(gpu_id) + i) % count for i in range(min(per_worker, count))]


def threads_per_worker(settings: Settings, model_config: dict) -> int:
    """Unless set, the cores divided among the most workers this model may scale to, so
    scaling up never oversubscribes the cores."""
    if settings.torch_threads:
        return settings.torch_threads
    return max(1, (os.cpu_count() or 1) // max(1, int(model_config.get("maxWorkers", 1))))


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _glibc():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not hasattr(libc, "mallinfo2"):  # not glibc, or older than 2.33
        return None
    libc.mallinfo2.restype = _Mallinfo2
    return libc


_LIBC = _glibc()


def release_freed_heap(threshold_mb: int) -> int:
    """Give freed heap back to the OS once it passes the threshold; returns the bytes it held.

    A request's activations are freed into glibc's heap, which keeps them: an idle worker
    would otherwise hold its largest request's activations (80-300 MB after gradients of
    8-100 tokens) on top of the interpreter, for every worker. Trimming costs ~10-20 ms.
    """
    if not threshold_mb or _LIBC is None:
        return 0
    held = _LIBC.mallinfo2().fordblks
    if held > threshold_mb << 20:
        _LIBC.malloc_trim(0)
    return held


def ascii_phrase(message: str) -> str:
    """The HTTP reason phrase as ASCII (the JSON body keeps the message as is): TorchServe
    0.12 frames the phrase with its length in characters but sends its UTF-8 bytes, so one
    "é" or "…" in it corrupts the frame and the frontend drops the worker ("Worker died.")."""
    return message.encode("ascii", "backslashreplace").decode("ascii")


DEFAULT_RESPONSE_TIMEOUT = 120  # s: TorchServe's, for a model-config without responseTimeout
DEADLINE_SHARE = 0.8  # deadline_seconds unset: this share of responseTimeout, the rest for the chunk in flight


def worker_settings(settings: Settings, model_config: dict) -> Settings:
    """The settings a worker runs with: its deadline below TorchServe's responseTimeout (which
    kills a worker whose request runs past it), and no request estimated past that deadline
    started. ValueError for a deadline TorchServe would overrun."""
    timeout = float(model_config.get("responseTimeout", DEFAULT_RESPONSE_TIMEOUT))
    seconds = settings.deadline_seconds or round(DEADLINE_SHARE * timeout, 1)
    if seconds >= timeout:
        raise ValueError(
            f"handler setting 'deadline_seconds' ({seconds:g}) must be below the model-config's "
            f"responseTimeout ({timeout:g}), or TorchServe kills the worker before the request stops"
        )
    return settings.model_copy(
        update={"deadline_seconds": seconds, "max_estimated_seconds": min(settings.max_estimated_seconds, seconds)}
    )


class BadHandlerSettings(Exception):
    """A model-config's `handler:` block TorchServe cannot be served with; fails the worker's load."""


class ExplainerHandler:
    request_model: type[TextRequest]  # what a body must be

    def initialize(self, context):
        properties = context.system_properties
        model_config = context.model_yaml_config or {}
        name = context.manifest["model"]["modelName"]
        try:
            self.settings = worker_settings(Settings.from_mapping(model_config.get("handler")), model_config)
        except ValueError as error:
            logger.error("archive %s: %s (model-config.yaml, handler:)", name, error)
            raise BadHandlerSettings(f"archive {name}: {error}") from None
        torch.set_num_threads(threads_per_worker(self.settings, model_config))
        model_dir = Path(properties["model_dir"]) / "model"
        devices = worker_devices(properties, self.settings.devices_per_worker)
        device_map = plan_device_map(model_dir, devices) if len(devices) > 1 else None
        try:
            self.loaded = load_model(model_dir, name, self.settings, device=devices[0], device_map=device_map)
        except ValueError as error:  # settings this machine cannot serve (dtype), a slow tokenizer
            logger.error("archive %s: %s", name, error)
            raise BadHandlerSettings(f"archive {name}: {error}") from None
        logger.info("loaded %s on %s (pid %d)", name, devices, os.getpid())
        if self.request_model is GradientsRequest and self.loaded.head == "causal-lm":
            calibrated(self.loaded)  # now, so that the first dry run or refusal answers at once
            release_freed_heap(self.settings.trim_heap_mb)
        self.metrics = Metrics(context, name, self.loaded.counters)
        self.context_model = {"name": name, "version": str(context.manifest["model"].get("modelVersion", ""))}
        self.request_fields = {f.alias or n for n, f in self.request_model.model_fields.items()}
        if kserve.take_over_envelopes():  # KServe's protocols, when TorchServe runs with its envelopes
            logger.info("kserve/kservev2 envelopes: handled by exformer.serving.kserve")
        self.initialized = True

    # --- what a subclass provides -------------------------------------------------------
    def parse(self, body, explain: bool) -> TextRequest | RequestError:
        return parse_request(self.loaded, self.request_model, body)

    def explain_batch(self, requests: list) -> list:
        """One result, or a RequestError, per request."""
        raise NotImplementedError

    def encode(self, result, request) -> tuple[bytes, str]:
        return json_bytes(result), JSON

    # --- the batch loop -------------------------------------------------------------------
    def handle(self, data, context):
        """One answer per row of TorchServe's batch. A row is one request, or under KServe's
        envelopes (`exformer.serving.kserve`) a v1 body of several instances or a v2 infer body; all
        the batch's requests are explained together, each answered (or refused) on its own."""
        protocol = getattr(data, "protocol", None)
        logger.info("batch of %d request(s)%s", len(data), f" (KServe {protocol})" if protocol else "")
        rows: list = []  # per row: a RequestError, or (its requests/errors, row details)
        for idx, row in enumerate(data):
            explain = context.get_request_header(idx, "explain") == "True"  # TorchServe sends "False" too
            try:  # not JSON: refused before the body is read (a 415: see require_json)
                require_json(request_content_type(context.get_all_request_header(idx)))
                bodies, extra = self._unpack(protocol, request_body(row))
                rows.append(([self._parse(body, explain) for body in bodies], extra))
            except RequestError as error:
                rows.append(error)
        parsed = [
            r for row in rows if not isinstance(row, RequestError) for r in row[0] if not isinstance(r, RequestError)
        ]
        results = dict(zip(map(id, parsed), self._explain(parsed))) if parsed else {}
        responses = []
        for idx, row in enumerate(rows):
            if isinstance(row, RequestError):
                responses.append(self._error(context, idx, row, protocol))
                continue
            requests, extra = row
            answers = [(r, r if isinstance(r, RequestError) else results[id(r)]) for r in requests]
            responses.append(self._respond(context, idx, protocol, answers, extra))
        release_freed_heap(self.settings.trim_heap_mb)  # the results' tensors are gone by now
        return responses

    def _unpack(self, protocol, body) -> tuple[list, object]:
        if protocol == "v1":
            return kserve.v1_instances(body), None
        if protocol == "v2":
            request, request_id = kserve.v2_request(body, self.request_fields)
            return [request], request_id
        return [body], None

    def _parse(self, body, explain: bool):
        try:
            return self.parse(body, explain)
        except RequestError as error:
            return error

    def _explain(self, requests: list) -> list:
        """The batch's results, under the worker's deadline: a request stopped at it gets its
        DeadlineError (a 503) with the cheaper requests named."""
        started = time.perf_counter()
        try:
            with deadline(self.settings.deadline_seconds):
                results = self.explain_batch(requests)
        except Exception as error:  # one broken batch must not kill the worker
            results = [error] * len(requests)
        results = [
            r.with_cheaper(cheaper_requests(q)) if isinstance(r, DeadlineError) and not r.cheaper else r
            for r, q in zip(results, requests)
        ]
        self.metrics.batch([r for r in results if not isinstance(r, Exception)], time.perf_counter() - started)
        return results

    def _respond(self, context, idx, protocol, answers: list, extra):
        if protocol is None:
            ((request, result),) = answers
            return self._answer(context, idx, request, result)
        context.set_response_content_type(idx, JSON)
        if protocol == "v1":
            explain = context.get_request_header(idx, "explain") == "True"
            body, status = kserve.v1_answer([self._as_json(request, result) for request, result in answers], explain)
            if status != 200:
                context.set_response_status(status, "no instance could be answered", idx)
            return body
        ((request, result),) = answers
        answer = self._as_json(request, result)
        if "error" in answer:
            context.set_response_status(answer["error"]["code"], ascii_phrase(answer["error"]["message"]), idx)
            return json_bytes(answer["error"])
        return kserve.v2_answer(answer, self.context_model, extra or context.get_request_id(idx))

    def _as_json(self, request, result) -> dict:
        """A result as the dict a KServe protocol carries, or {"error": ...} in its place."""
        if isinstance(result, RequestError):
            self.metrics.refused(result)
            return {"error": kserve.error_json(result)}
        if isinstance(result, Exception):
            return {"error": self._failure(result)}
        try:
            return self.as_json(result, request)
        except RequestError as error:
            self.metrics.refused(error)
            return {"error": kserve.error_json(error)}
        except Exception as error:
            return {"error": self._failure(error)}

    def as_json(self, result, request) -> dict:
        """What a KServe protocol carries for a result (a subclass with other results says how)."""
        return result

    def _answer(self, context, idx, request, result):
        if isinstance(result, RequestError):
            return self._error(context, idx, result)
        if isinstance(result, Exception):
            return self._internal_error(context, idx, result)
        try:
            body, content_type = self.encode(result, request)
        except Exception as error:
            return self._internal_error(context, idx, error)
        context.set_response_content_type(idx, content_type)
        return body

    def _error(self, context, idx, error: RequestError, protocol=None) -> bytes:
        self.metrics.refused(error)
        context.set_response_status(error.code, ascii_phrase(error.message), idx)
        context.set_response_content_type(idx, JSON)
        return json_bytes(kserve.error_json(error) if protocol else error.to_json())

    def _internal_error(self, context, idx, error: Exception) -> bytes:
        body = self._failure(error)
        context.set_response_status(body["code"], body["message"], idx)
        context.set_response_content_type(idx, JSON)
        return json_bytes({k: body[k] for k in ("code", "type", "message")})

    def _failure(self, error: Exception) -> dict:
        """A failure no change to the request fixes: logged, and answered 503 (out of memory) or 500."""
        logger.error("request failed:\n%s", "".join(traceback.format_exception(error)))
        busy = isinstance(error, torch.OutOfMemoryError)
        code = 503 if busy else 500
        message = (
            "out of memory; retry later or send a smaller request"
            if busy
            else (f"internal error ({type(error).__name__}); the worker is still running, see its log")
        )
        return {
            "error": message,
            "code": code,
            "type": "ServiceUnavailable" if busy else "InternalServerError",
            "message": message,
            "field": None,
        }
