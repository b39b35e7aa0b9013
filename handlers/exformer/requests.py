"""Typed requests. Every way a body can be wrong maps to one RequestError naming the field."""

import difflib
import json
from dataclasses import dataclass

from .errors import RequestError


def decode_body(body) -> dict:
    """TorchServe hands us a dict (JSON content type), bytes or str; all must be a JSON object."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError("body", "is not UTF-8 text")
    if isinstance(body, str):
        if not body.strip():
            return {}
        try:
            body = json.loads(body)
        except json.JSONDecodeError as e:
            raise RequestError("body", f"is not JSON ({e.msg} at character {e.pos})")
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise RequestError("body", f"must be a JSON object, got {type(body).__name__}")
    return body


def reject_unknown(body: dict, known: set[str]) -> None:
    for key in body:
        if key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1)
            also = f"; did you mean '{hint[0]}'?" if hint else f"; known fields: {sorted(known)}"
            raise RequestError(key, f"unknown field{also}")


def text_field(body: dict, name: str, max_chars: int, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise RequestError(name, "is required (a non-empty string)")
        return None
    if not isinstance(value, str):
        raise RequestError(name, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RequestError(name, "must not be empty")
    if len(value) > max_chars:
        raise RequestError(
            name, f"has {len(value)} characters; this model accepts at most {max_chars}", code=413
        )
    return value


def int_field(body: dict, name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(name, f"must be an integer, got {json.dumps(value)}")
    if not low <= value <= high:
        raise RequestError(name, f"must be between {low} and {high}, got {value}")
    return value


def choice_field(body: dict, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = body.get(name, default)
    if value not in choices:
        raise RequestError(name, f"must be one of {list(choices)}, got {json.dumps(value)}")
    return value


def index_list_field(body: dict, name: str, size: int, what: str, allow_all: bool = True):
    """'all' (→ None) or a list of distinct indices in [0, size)."""
    value = body.get(name, "all" if allow_all else [])
    if allow_all and value == "all":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        expected = '"all" or a list of integers' if allow_all else "a list of integers"
        raise RequestError(name, f"must be {expected}, got {json.dumps(value)[:80]}")
    if allow_all and not value:
        raise RequestError(name, 'must not be empty (use "all")')
    bad = [v for v in value if not 0 <= v < size]
    if bad:
        raise RequestError(name, f"{bad} out of range: this input has {what} 0..{size - 1}")
    if len(set(value)) != len(value):
        raise RequestError(name, "has duplicates")
    return value


ATTENTION_ENCODINGS = ("json", "float16-base64")


@dataclass(frozen=True)
class AttentionRequest:
    text: str | None  # None: a details-only request
    text_pair: str | None = None
    layers: list[int] | None = None  # None: all
    heads: list[int] | None = None
    mask: list[int] | None = None  # token indices, checked once the text is tokenized
    top_k: int = 5
    encoding: str = "json"


def parse_attention_request(body, loaded, settings) -> AttentionRequest:
    body = decode_body(body)
    reject_unknown(body, {"text", "text_pair", "layers", "heads", "mask", "top_k", "encoding"})
    if not body:
        return AttentionRequest(text=None)
    cfg = loaded.config
    mask = body.get("mask")
    if mask is not None:
        if loaded.tokenizer.mask_token_id is None:
            raise RequestError("mask", f"{loaded.name} has no mask token; it cannot mask tokens")
        mask = index_list_field(body, "mask", 1 << 30, "tokens", allow_all=False)
    return AttentionRequest(
        text=text_field(body, "text", settings.max_text_chars),
        text_pair=text_field(body, "text_pair", settings.max_text_chars, required=False),
        layers=index_list_field(body, "layers", cfg.num_hidden_layers, "layers"),
        heads=index_list_field(body, "heads", cfg.num_attention_heads, "heads"),
        mask=mask,
        top_k=int_field(body, "top_k", settings.default_top_k, 1, len(loaded.tokenizer)),
        encoding=choice_field(body, "encoding", "json", ATTENTION_ENCODINGS),
    )
