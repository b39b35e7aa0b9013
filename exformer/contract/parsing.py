"""A request body → a validated request, or one RequestError naming the field at fault.

>>> parse(AttentionRequest, {"text": "a", "top-k": 3}).message
"top-k: unknown field; did you mean 'top_k'?"
>>> parse(GradientsRequest, {"text": "a", "baseline": None}).message
'baseline: must not be null (leave it out for its default)'
"""

import difflib
import re

import orjson
from pydantic import ValidationError

from .errors import RequestError, json_excerpt
from .requests import AttentionRequest, GradientsRequest, Request  # noqa: F401  (doctest names)

# objects in a request: an error names the path, sources[1].end
_NESTED = ("messages", "sources", "generate", "evaluate")

_PHRASES = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
}


def decode_body(body) -> dict:
    """TorchServe hands us bytes (TS_DECODE_INPUT_REQUEST=false), or a dict/str where it decoded
    the body itself; all must be one JSON object."""
    if isinstance(body, (bytes, bytearray, str)):
        if not (body.strip() if isinstance(body, str) else bytes(body).strip()):
            return {}
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise _not_json(body.encode() if isinstance(body, str) else bytes(body), error) from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise RequestError("body", f"must be a JSON object, got {type(body).__name__}")
    return body


_NON_FINITE = re.compile(rb'"((?:[^"\\]|\\.)*)"\s*:\s*(NaN|-?Infinity)\b')


def _not_json(body: bytes, error: orjson.JSONDecodeError) -> RequestError:
    """Why a body is not JSON; a NaN or an Infinity (which JSON has no number for) by its field."""
    if "utf-8" in str(error).lower():
        return RequestError("body", "is not UTF-8 text")
    found = _NON_FINITE.search(body)
    if found:
        return RequestError(
            found[1].decode(errors="replace"),
            f"is {found[2].decode()}, which is not a JSON number; send a finite number",
        )
    return RequestError("body", f"is not JSON ({error})")


def parse(model_class: type[Request], body) -> Request | RequestError:
    """Validate a body against a request model's model-free rules; the first problem as a
    RequestError, or the request. Against a loaded model: `exformer.explain.parse_request`.

    Returns the error rather than raising it so that the caller decides (the handlers answer it).
    """
    try:
        return model_class.model_validate(decode_body(body))
    except RequestError as error:
        return error
    except ValidationError as error:
        return request_error(error, model_class)


def request_error(error: ValidationError, model_class: type[Request]) -> RequestError:
    errors = error.errors(include_url=False)
    # An unknown field first: it is often the cause of a "missing" one (a typo of its name).
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = [str(part) for part in first["loc"] if not isinstance(part, int)]
    kind, value = first["type"], first.get("input")
    if kind == "extra_forbidden" and len(first["loc"]) > 1 and loc[0] in _NESTED:  # inside a message, source, generate
        known = _nested_fields(model_class, loc[0])
        hint = difflib.get_close_matches(loc[-1], known, n=1)
        return RequestError(
            _path(first["loc"]),
            f"unknown field; did you mean '{hint[0]}'?" if hint else f"unknown field; known fields: {known}",
        )
    if kind == "extra_forbidden":
        field = loc[0]
        known = sorted(f.alias or name for name, f in model_class.model_fields.items())
        hint = difflib.get_close_matches(field, known, n=1)
        return RequestError(
            field, f"unknown field; did you mean '{hint[0]}'?" if hint else f"unknown field; known fields: {known}"
        )
    field = _field_name(loc, model_class, first)
    if len(first["loc"]) > 1 and loc and loc[0] in _NESTED:  # name the path: sources[1].end, generate.max_new_tokens
        field = _path(first["loc"])
    if kind in ("exformer", "too_large"):
        return RequestError(field, first["msg"], code=413 if kind == "too_large" else 400)
    if kind == "missing":
        return RequestError(field, "is required")
    if kind == "too_long":
        ctx = first.get("ctx", {})
        return RequestError(
            field,
            f"has {ctx.get('actual_length')} entries; at most {ctx.get('max_length')} (a fixed limit of the contract)",
        )
    if value is None:  # a client's unset variable: say so rather than answer something else
        advice = (
            "leave every field out for the model's details"
            if field in ("text", "sequence")
            else "leave it out for its default"
        )
        return RequestError(field, f"must not be null ({advice})")
    phrase = _PHRASES.get(kind) or first["msg"][0].lower() + first["msg"][1:]
    return RequestError(field, f"{phrase}, got {json_excerpt(value)}")


def _nested_fields(model_class, name: str) -> list[str]:
    """The fields of the object (or of each item) a request field holds."""
    from typing import get_args

    annotation = model_class.model_fields[name].annotation
    for candidate in (annotation, *get_args(annotation), *(a for arg in get_args(annotation) for a in get_args(arg))):
        if isinstance(candidate, type) and hasattr(candidate, "model_fields"):
            return sorted(candidate.model_fields)
    return []


def _path(loc) -> str:
    """A nested field as a client would write it: sources[1].end."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _field_name(loc: list[str], model_class, first) -> str:
    """The request field at fault, as the client spelled it (aliases included)."""
    if not loc:
        return "body"
    name = loc[0]
    if name in model_class.model_fields:
        alias = model_class.model_fields[name].alias
        return alias or name
    return name
