"""The errors a caller sees: a 4xx naming the field that was wrong (the same exception locally
and from a server), and a server that failed in a way no change to the request fixes."""

import json


def json_excerpt(value, limit: int = 80) -> str:
    """A value as the client sent it, in JSON, cut to `limit` characters for an error message
    (NaN and Infinity as written, not as the null that strict JSON would make of them)."""
    text = json.dumps(value, default=repr, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RequestError(Exception):
    """A request we refuse; `field` names the part of the request at fault."""

    def __init__(self, field: str | None, message: str, code: int = 400, estimate: dict | None = None):
        self.field = field
        self.message = f"{field}: {message}" if field else message
        self.code = code
        self.estimate = estimate  # a request refused for its cost: the contract's CostEstimate
        self._type: str | None = None
        super().__init__(self.message)

    @classmethod
    def from_json(cls, body: dict, status: int | None = None) -> "RequestError":
        """The server's error answer (`{"code", "type", "message", "field"}`) as the same
        exception a local call raises. Its message already starts with the field, so it is
        kept as sent; answers that are not ours (TorchServe's own 404, a bare 413) lack
        `field` and keep their own `type`."""
        if body.get("type") == "Timeout" and "progress" in body:
            return DeadlineError(
                body.get("seconds") or 0.0, body.get("deadline_seconds") or 0.0, body["progress"], body.get("cheaper")
            )
        error = RequestError(None, str(body.get("message") or f"HTTP {status}"), int(body.get("code") or status or 400))
        error.field = body.get("field")
        error.estimate = body.get("estimate")
        error._type = body.get("type")
        return error

    @property
    def type(self) -> str:
        if self._type:
            return self._type
        return {400: "BadRequest", 413: "PayloadTooLarge", 415: "UnsupportedMediaType", 503: "ServiceUnavailable"}.get(
            self.code, "Error"
        )

    def to_json(self) -> dict:
        body = {"code": self.code, "type": self.type, "message": self.message, "field": self.field}
        return body if self.estimate is None else {**body, "estimate": self.estimate}

    def __reduce__(self):  # pickles (process pools) with field, code and type intact
        return _rebuild, (type(self), self.to_json())


def _rebuild(cls, body: dict) -> RequestError:
    return cls.from_json(body)


class DeadlineError(RequestError):
    """A request stopped at the worker's deadline (`deadline_seconds`), before TorchServe's
    `responseTimeout` would kill the worker: 503, type "Timeout". Not resent: it would stop again.
    `progress` says how far it got; `cheaper` names requests that would fit."""

    def __init__(self, seconds: float, deadline: float, progress: str, cheaper: list[str] | None = None):
        self.seconds, self.deadline, self.progress, self.cheaper = seconds, deadline, progress, list(cheaper or [])
        options = f"; cheaper: {'; '.join(self.cheaper)}" if self.cheaper else ""
        super().__init__(
            None,
            f"stopped after {seconds:.1f} s at this worker's deadline ({deadline:g} s, the archive's "
            f"deadline_seconds) with {progress}{options}",
            code=503,
        )
        self._type = "Timeout"

    def with_cheaper(self, cheaper: list[str]) -> "DeadlineError":
        return DeadlineError(self.seconds, self.deadline, self.progress, cheaper)

    def to_json(self) -> dict:
        return {
            **super().to_json(),
            "seconds": self.seconds,
            "deadline_seconds": self.deadline,
            "progress": self.progress,
            "cheaper": self.cheaper,
        }

    def __reduce__(self):
        return type(self), (self.seconds, self.deadline, self.progress, self.cheaper)


class ServerError(Exception):
    """The server failed and sending the request again did not help (or was not safe): a 5xx
    after the allowed resends, an answer that is not an explanation, no connection, no answer
    in time. `status` is None when there was no HTTP answer; `body` is what came back."""

    def __init__(self, message: str, status: int | None = None, body: bytes = b"", sends: int = 1):
        super().__init__(message)
        self.message, self.status, self.body, self.sends = message, status, body, sends

    def __reduce__(self):
        return type(self), (self.message, self.status, self.body, self.sends)
