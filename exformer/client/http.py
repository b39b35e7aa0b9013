"""A client for exformer models served by TorchServe: typed results (the same objects a local
`exformer.explain_*` call returns), the server's 4xx as `exformer.RequestError`, and resends
of exactly what is safe to send again.

>>> from exformer import Client
>>> client = Client("http://127.0.0.1:8080")
>>> a = client.attention("minilm-attention", "The cat sat on the mat.")
>>> a.attention.shape                       # numpy float32 [layers, heads, T, T]
(6, 12, 9, 9)
>>> g = client.gradients("sentiment-gradients", "A dull film.", n_steps=16)
>>> g.target["label"], g.attributions.shape
('negative', (6,))
>>> tensors = client.gradients("sentiment-gradients", "A dull film.", n_steps=8, tensors=True).tensors
>>> tensors["intermediate_gradients"].shape
(8, 6, 384)

`AsyncClient` has the same methods as coroutines. Resending: explanations are pure functions
of the request, so the answers that say its work was lost rather than refused are sent again,
at most `retries` times, after exponential backoff with full jitter: TorchServe's 500
"Worker died." (the worker stopped under the request: scale-down, crash), the same with 507
(the worker was SIGKILLed; resent once), 503 (queue full, out of memory), and a refused
connection. Nothing else: a 4xx would be refused again, and any other 500 is a bug to report,
not to repeat.
"""

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson

from ..contract.errors import RequestError, ServerError
from .results import AttentionResult, GradientsResult

DEFAULT_URL = "http://127.0.0.1:8080"
# TorchServe's answer when the worker running a request is stopped under it (tests/support,
# frontend/src/api.ts): the request was not refused, its work was lost.
WORKER_LOST = "Worker died."
BACKOFF_CAP = 30.0  # s: the longest wait between two sends
# "torchserve": TorchServe's /predictions (every format); "kserve-v1": an InferenceService served
# by our runtime (deploy/kserve), KServe's v1 protocol, JSON answers only
PROTOCOLS = ("torchserve", "kserve-v1")


@dataclass(frozen=True)
class ServedModel:
    """A model the server serves, from its management API."""

    name: str
    handler: str | None  # "attention" | "gradients", from the name's suffix (archive.sh's convention)
    workers: int
    ready: int  # workers that can take a request now
    max_workers: int


# --- transport-free: what to send, and what each answer means --------------------------------


def resendable(answer: httpx.Response | httpx.TransportError, sends: int = 1) -> bool:
    """Whether sending the same request again (after `sends` sends) is safe and may succeed.

    TorchServe answers "Worker died." with 500, or with 507 when the worker was killed by
    SIGKILL (exit 137: the kernel's out-of-memory killer, or an operator). A 507 is resent
    once only: if this request is what exhausted the memory, a second death says so, and
    more resends would only kill more workers.
    """
    if isinstance(answer, httpx.TransportError):
        return isinstance(answer, httpx.ConnectError)  # nothing reached the server
    status = answer.status_code
    if status == 503:  # busy, out of memory; not a request stopped at its deadline, which would stop again
        return _json_object(answer.content).get("type") != "Timeout"
    if status == 500 or (status == 507 and sends == 1):
        return _json_object(answer.content).get("message") == WORKER_LOST
    return False


def backoff_delay(sends: int, base: float) -> float:
    """Full jitter: uniform in [0, base · 2^(sends−1)], capped, so that clients whose requests
    were lost together do not come back together."""
    return random.uniform(0, min(BACKOFF_CAP, base * 2 ** (sends - 1)))


def _json_object(content: bytes) -> dict:
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def decode_explanation(
    response: httpx.Response, details: type = AttentionResult
) -> AttentionResult | GradientsResult | dict:
    """A 200 answer by its format: JSON (attention or the gradients summary), npz (the summary
    with every tensor), torch-gzip (the old server's dict of tensors; needs torch). An answer
    to an empty body (the model's details only) becomes a `details`."""
    content, kind = response.content, response.headers.get("content-type", "")
    if "npz" in kind or content[:2] == b"PK":
        return GradientsResult.from_npz(content)
    if "gzip" in kind or content[:2] == b"\x1f\x8b":
        import gzip
        import io

        import torch

        return torch.load(io.BytesIO(gzip.decompress(content)), weights_only=True)
    data = orjson.loads(content)
    kind = GradientsResult if "convergence_delta" in data else AttentionResult if "tokens" in data else details
    return kind(data)


def decode_v1_explanation(
    response: httpx.Response, details: type = AttentionResult
) -> AttentionResult | GradientsResult:
    """A KServe v1 answer to one instance: `{"predictions": [answer]}` (or "explanations"); an
    instance refused (`{"error": {...}}` in its place) raises its RequestError."""
    data = orjson.loads(response.content)
    error = _v1_error(data)
    if error is not None:
        raise RequestError.from_json(error, error.get("code"))
    (answer,) = data.get("predictions") or data["explanations"]
    kind = GradientsResult if "convergence_delta" in answer else AttentionResult if "tokens" in answer else details
    return kind(answer)


def _v1_error(body: dict) -> dict | None:
    answers = body.get("predictions") or body.get("explanations")
    if (
        isinstance(answers, list)
        and len(answers) == 1
        and isinstance(answers[0], dict)
        and set(answers[0]) == {"error"}
    ):
        return answers[0]["error"]
    return None


def _decode_json(response: httpx.Response) -> Any:
    return orjson.loads(response.content)


@dataclass
class Call:
    """One call: the request, sent again while the answer says that is safe; then its result."""

    method: str
    url: str
    headers: dict
    content: bytes | None
    timeout: float
    decode: Callable[[httpx.Response], Any]
    retries: int
    backoff: float
    sends: int = 0
    answer: Any = field(default=None, repr=False)

    def request(self) -> httpx.Request:
        return httpx.Request(
            self.method,
            self.url,
            headers=self.headers,
            content=self.content,
            extensions={"timeout": httpx.Timeout(self.timeout).as_dict()},
        )

    def after(self, answer: httpx.Response | httpx.TransportError) -> float | None:
        """Seconds to wait before sending again; None when `answer` is final."""
        self.sends += 1
        self.answer = answer
        if self.sends > self.retries or not resendable(answer, self.sends):
            return None
        return backoff_delay(self.sends, self.backoff)

    def result(self):
        """The decoded final answer, or the exception it stands for."""
        answer, where = self.answer, f"{self.method} {self.url}"
        tries = f" (sent {self.sends} times)" if self.sends > 1 else ""
        if isinstance(answer, httpx.TimeoutException):
            raise ServerError(
                f"{where}: no answer within {self.timeout} s; pass a longer timeout=", sends=self.sends
            ) from answer
        if isinstance(answer, httpx.TransportError):
            raise ServerError(f"{where}: {type(answer).__name__}: {answer}{tries}", sends=self.sends) from answer
        status = answer.status_code
        if 200 <= status < 300:
            try:
                return self.decode(answer)
            except (ValueError, KeyError, TypeError) as error:
                raise ServerError(
                    f"{where}: a {status} answer that is not an explanation ({error})",
                    status,
                    answer.content,
                    self.sends,
                ) from error
        body = _json_object(answer.content)
        body = _v1_error(body) or body  # KServe v1: {"predictions": [{"error": {...}}]}
        if 400 <= status < 500:
            if "message" not in body:  # not ours (a proxy, a bare 413): keep what it said
                body = {"code": status, "message": f"{answer.reason_phrase}: {answer.text[:500]}".rstrip(": ")}
            raise RequestError.from_json(body, status)
        said = f"{body.get('type', answer.reason_phrase)}: {body.get('message', answer.text[:500])}"
        raise ServerError(f"{where}: {status} {said}{tries}", status, answer.content, self.sends)


def _request_body(text: str | None, options: dict, defaults: dict) -> dict:
    """The contract's JSON body; `returns` (Python cannot take `return=`) is sent as "return".
    No text and no options: an empty body, which asks for the model's details."""
    body = {} if text is None else {**defaults, "text": text}
    for name, value in options.items():
        body["return" if name == "returns" else name] = value
    return body


def _gradients_format(tensors: bool, options: dict) -> str:
    fmt = options.pop("format", None) or ("npz" if tensors else "json")
    if fmt not in ("json", "npz") or (tensors and fmt != "npz"):
        raise ValueError(
            f"gradients(): format {fmt!r} with tensors={tensors}: the JSON summary is the default, "
            "tensors=True fetches npz; for torch-gzip use explain(model, body)"
        )
    return fmt


def _listing_page(listing: dict) -> tuple[list[str], str | None]:
    return [m["modelName"] for m in listing.get("models", [])], listing.get("nextPageToken") or None


def _served_model(description: list[dict]) -> ServedModel:
    info = description[0]  # the default version
    name, workers = info["modelName"], info.get("workers", [])
    handler = next((h for h in ("attention", "gradients") if name.endswith(f"-{h}")), None)
    return ServedModel(
        name,
        handler,
        len(workers),
        sum(w.get("status") == "READY" for w in workers),
        int(info.get("maxWorkers", len(workers))),
    )


def _management_default(url: str) -> str | None:
    """TorchServe's management API listens on the inference port + 1 (8080 → 8081)."""
    parsed = httpx.URL(url)
    return None if parsed.port is None else str(parsed.copy_with(port=parsed.port + 1)).rstrip("/")


class _Calls:
    """Configuration and request building, shared by Client and AsyncClient: the two differ
    only in how a Call is sent."""

    _transport: type

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        management_url: str | None = None,
        management_token: str | None = None,
        timeout: float = 300.0,
        retries: int = 3,
        backoff: float = 0.5,
        protocol: str = "torchserve",
    ):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol {protocol!r}: one of {PROTOCOLS}")
        self.protocol = protocol
        self.url = url.rstrip("/")
        self.management_url = (management_url or _management_default(self.url) or "").rstrip("/") or None
        self.token, self.management_token = token, management_token
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.last_sends = 0  # how many sends the last finished call took (1: no resend)
        self._http = self._transport()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def _call(
        self, method: str, url: str, token: str | None, content: bytes | None, timeout: float | None, decode: Callable
    ) -> Call:
        headers = {"Accept": "application/json, application/x-npz, application/gzip"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return Call(
            method,
            url,
            headers,
            content,
            self.timeout if timeout is None else timeout,
            decode,
            self.retries,
            self.backoff,
        )

    def _explain_call(self, model: str, body: dict, timeout: float | None, details: type | None = None) -> Call:
        details = details or (GradientsResult if model.endswith("-gradients") else AttentionResult)
        if self.protocol == "kserve-v1":  # an InferenceService: one instance, its answer unwrapped
            if body.get("format", "json") != "json":
                raise ValueError(
                    f"KServe's v1 protocol answers JSON, not {body['format']!r}: the full tensors "
                    "(tensors=True, npz, torch-gzip) come from TorchServe's /predictions"
                )
            content = orjson.dumps({"instances": [body]}, option=orjson.OPT_SERIALIZE_NUMPY)
            return self._call(
                "POST",
                f"{self.url}/v1/models/{quote(model, safe='')}:predict",
                self.token,
                content,
                timeout,
                partial(decode_v1_explanation, details=details),
            )
        content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        return self._call(
            "POST",
            f"{self.url}/predictions/{quote(model, safe='')}",
            self.token,
            content,
            timeout,
            partial(decode_explanation, details=details),
        )

    def _attention_call(self, model, text, timeout, options) -> Call:
        body = _request_body(text, options, {"encoding": "float16-base64"})
        return self._explain_call(model, body, timeout, AttentionResult)

    def _gradients_call(self, model, text, tensors, timeout, options) -> Call:
        fmt = _gradients_format(tensors, options)  # takes "format" out of options
        body = _request_body(text, options, {} if fmt == "json" else {"format": fmt})  # json: the server's default
        return self._explain_call(model, body, timeout, GradientsResult)

    def _listing_call(self, page: str | None) -> Call:
        return self._management_call("models", {"limit": 100, **({"next_page_token": page} if page else {})})

    def _describe_call(self, name: str) -> Call:
        return self._management_call(f"models/{quote(name, safe='')}")

    def _management_call(self, path: str, query: dict | None = None) -> Call:
        if self.management_url is None:
            raise ValueError(f"no management URL for {self.url} (no port to add 1 to); pass management_url=")
        url = f"{self.management_url}/{path}" + (f"?{urlencode(query)}" if query else "")
        return self._call("GET", url, self.management_token, None, None, _decode_json)


class Client(_Calls):
    """Explanations from a TorchServe serving exformer archives (thread-safe; reuse one).

    `url`: the inference API; `token`/`management_token`: TorchServe's keys, sent as
    `Authorization: Bearer`; `management_url`: default the inference port + 1; `timeout`: s
    per send (a call's `timeout=` overrides it); `retries`: resends of a lost request;
    `backoff`: s, the first resend's longest wait (doubling each time); `protocol`:
    "kserve-v1" for an InferenceService on our KServe runtime (its URL and inference key; JSON
    answers; `models()` needs a reachable management API, which a KServe pod does not offer).
    """

    _transport = httpx.Client

    def attention(
        self, model: str, text: str | None = None, *, timeout: float | None = None, **options
    ) -> AttentionResult:
        """Attention of `text` (`options`: the contract's fields, e.g. layers=[0], heads=[1, 2],
        text_pair=…, mask=[3], top_k=3). Fetched as float16-base64 (4.4-4.9x smaller than json)
        unless encoding="json"; `.attention` is float32 either way. No text: the model's details."""
        return self._send(self._attention_call(model, text, timeout, options))

    def gradients(
        self, model: str, text: str | None = None, *, tensors: bool = False, timeout: float | None = None, **options
    ) -> GradientsResult:
        """Integrated gradients of `text` (`options`: target=, baseline=, n_steps=, method=,
        score=, returns=[…] for `return`, text_pair=…; causal LMs: continuation=…,
        generate={"max_new_tokens": n}, foil=…, messages=[…] instead of text, sources=[…],
        attribution="occlusion"/"contextcite"; aggregate="word"/"sentence"). The JSON summary, or with
        tensors=True every tensor too (npz, read by numpy without pickle) in `.tensors`.
        No text: the model's details."""
        return self._send(self._gradients_call(model, text, tensors, timeout, options))

    def explain(self, model: str, body: dict, *, timeout: float | None = None):
        """POST `body` as is (any contract fields and format); the decoded answer."""
        return self._send(self._explain_call(model, body, timeout))

    def models(self) -> list[ServedModel]:
        """What the server serves, with its workers (the management API)."""
        names, page = [], None
        while True:
            more, page = _listing_page(self._send(self._listing_call(page)))
            names += more
            if page is None:
                break
        return [_served_model(self._send(self._describe_call(name))) for name in names]

    def _send(self, call: Call):
        while (delay := call.after(self._attempt(call))) is not None:
            time.sleep(delay)
        self.last_sends = call.sends
        return call.result()

    def _attempt(self, call: Call):
        try:
            return self._http.send(call.request())
        except httpx.TransportError as error:
            return error

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncClient(_Calls):
    """Client's methods as coroutines, for many requests in flight from one thread
    (`asyncio.gather`); same arguments, same results, same resends."""

    _transport = httpx.AsyncClient

    async def attention(
        self, model: str, text: str | None = None, *, timeout: float | None = None, **options
    ) -> AttentionResult:
        """See Client.attention."""
        return await self._send(self._attention_call(model, text, timeout, options))

    async def gradients(
        self, model: str, text: str | None = None, *, tensors: bool = False, timeout: float | None = None, **options
    ) -> GradientsResult:
        """See Client.gradients."""
        return await self._send(self._gradients_call(model, text, tensors, timeout, options))

    async def explain(self, model: str, body: dict, *, timeout: float | None = None):
        """See Client.explain."""
        return await self._send(self._explain_call(model, body, timeout))

    async def models(self) -> list[ServedModel]:
        """See Client.models; the models are described concurrently."""
        names, page = [], None
        while True:
            more, page = _listing_page(await self._send(self._listing_call(page)))
            names += more
            if page is None:
                break
        described = await asyncio.gather(*(self._send(self._describe_call(name)) for name in names))
        return [_served_model(d) for d in described]

    async def _send(self, call: Call):
        answer = await self._attempt(call)
        while (delay := call.after(answer)) is not None:
            await asyncio.sleep(delay)
            answer = await self._attempt(call)
        self.last_sends = call.sends
        return call.result()

    async def _attempt(self, call: Call):
        try:
            return await self._http.send(call.request())
        except httpx.TransportError as error:
            return error

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


__all__ = ["Client", "AsyncClient", "ServedModel", "Call", "resendable", "decode_explanation"]
