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


# --- gradients ----------------------------------------------------------------------------

from .baselines import BASELINES, SPECIALS, TOKEN_BASELINES, baseline_token_id, default_baseline  # noqa: E402
from .encoding import BYTES_PER_VALUE  # noqa: E402

# captum's approximation methods (captum.attr._utils.approximation_methods.SUPPORTED_METHODS)
GRADIENT_METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")
GRADIENT_FORMATS = ("json", "npz", "torch-gzip")
GRADIENT_RETURNS = ("attributions", "intermediate_gradients", "step_sizes", "intermediates", "path_scores")
DEFAULT_RETURNS = {
    "json": ("attributions", "step_sizes", "path_scores"),  # the summary: small
    "npz": GRADIENT_RETURNS,
    "torch-gzip": ("attributions", "intermediate_gradients", "step_sizes", "intermediates"),  # old keys
}
GRADIENT_FIELDS = {
    "text", "sequence", "text_pair", "target", "baseline", "baseline_specials", "seed",
    "n_steps", "method", "return", "format",
}
GRADIENT_HEADS = ("sequence-classification", "causal-lm")


@dataclass(frozen=True)
class GradientsRequest:
    text: str
    text_pair: str | None = None
    target: int | None = None  # class index, or next-token id (causal LM); None: the model's top pick
    baseline: str = "pad"
    baseline_specials: str = "keep"
    seed: int = 0  # for rand-norm / rand-unif
    n_steps: int = 50
    method: str = "gausslegendre"
    returns: tuple[str, ...] = DEFAULT_RETURNS["json"]
    format: str = "json"


def target_field(body: dict, loaded) -> int | None:
    """Classifier: class index or label. Causal LM: next-token id, token string or one-token text."""
    value = body.get("target")
    if value is None:
        return None
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if loaded.head == "sequence-classification":
        labels = loaded.labels
        if is_int and 0 <= value < len(labels):
            return value
        if is_int:
            raise RequestError("target", f"class {value} out of range: this model has classes 0..{len(labels) - 1} {labels}")
        if isinstance(value, str) and value in labels:
            return labels.index(value)
        if isinstance(value, str):
            raise RequestError("target", f"unknown label {json.dumps(value)}; labels: {labels}")
        raise RequestError("target", f"must be a class index or one of {labels}, got {json.dumps(value)[:80]}")
    tokenizer = loaded.tokenizer
    n_ids = min(loaded.config.vocab_size, len(tokenizer))
    if is_int and 0 <= value < n_ids:
        return value
    if is_int:
        raise RequestError("target", f"token id {value} out of range 0..{n_ids - 1}")
    if not isinstance(value, str) or not value:
        raise RequestError("target", f"must be the next token (text or id), got {json.dumps(value)[:80]}")
    token_id = tokenizer.get_vocab().get(value)
    if token_id is None:
        ids = tokenizer(value, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            pieces = tokenizer.convert_ids_to_tokens(ids)
            raise RequestError("target", f"{json.dumps(value)} is {len(ids)} tokens {pieces}; give one token or its id")
        token_id = ids[0]
    if token_id >= n_ids:
        raise RequestError("target", f"token id {token_id} is not among the model's {n_ids} outputs")
    return token_id


def returns_field(body: dict, fmt: str) -> tuple[str, ...]:
    value = body.get("return", DEFAULT_RETURNS[fmt])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise RequestError("return", f"must be a list of {list(GRADIENT_RETURNS)}, got {json.dumps(value)[:80]}")
    bad = [v for v in value if v not in GRADIENT_RETURNS]
    if bad:
        raise RequestError("return", f"unknown item(s) {bad}; choose from {list(GRADIENT_RETURNS)}")
    if len(set(value)) != len(value):
        raise RequestError("return", "has duplicates")
    return tuple(value)


def gradients_response_bytes(request: GradientsRequest, n_tokens: int, width: int) -> int:
    """An upper bound of the encoded response, known before anything is computed."""
    n, t, full = request.n_steps, n_tokens, request.n_steps * n_tokens * width
    binary = request.format != "json"
    values = {
        "attributions": t * width + t if binary else 2 * t,  # full IG only in binary formats
        "intermediate_gradients": full,
        "intermediates": full,
        "step_sizes": 2 * n,  # with the alphas
        "path_scores": 2 * n,  # with the gradient norms
    }
    per_value = 4 if binary else BYTES_PER_VALUE["json"]
    summary = (4096 + 512 * t) * (4 if request.format == "npz" else 1)  # npz: the JSON as UTF-32
    return summary + per_value * sum(values[r] for r in request.returns)


def check_gradients_size(request: GradientsRequest, n_tokens: int, width: int, settings) -> None:
    size = gradients_response_bytes(request, n_tokens, width)
    if size <= settings.max_response_bytes:
        return
    hints = ['fewer "n_steps"', "a shorter text"]
    if {"intermediate_gradients", "intermediates"} & set(request.returns):
        hints.insert(0, 'leave "intermediate_gradients"/"intermediates" out of "return" (the JSON summary is small)')
        if request.format == "json":
            hints.insert(0, '"format": "npz" (float32, ~6x smaller than JSON)')
    raise RequestError(
        "return",
        f"{n_tokens} tokens x {request.n_steps} steps would make a response of about "
        f"{size / 2**20:.0f} MiB, over the {settings.max_response_bytes / 2**20:.0f} MiB limit; "
        f"ask for {', or '.join(hints)}",
        code=413,
    )


def parse_gradients_request(body, loaded, settings) -> GradientsRequest:
    body = decode_body(body)
    reject_unknown(body, GRADIENT_FIELDS)
    if loaded.head not in GRADIENT_HEADS:
        raise RequestError(
            "model", f"{loaded.name} has no classification or causal-LM head, so no score to attribute"
        )
    if "text" in body and "sequence" in body:
        raise RequestError("sequence", 'is the old name of "text"; give one of them, not both')
    text = text_field(body, "sequence" if "sequence" in body else "text", settings.max_text_chars)
    text_pair = text_field(body, "text_pair", settings.max_text_chars, required=False)
    method = choice_field(body, "method", "gausslegendre", GRADIENT_METHODS)
    n_steps = int_field(body, "n_steps", 50, 1, settings.max_n_steps)
    if method != "gausslegendre" and n_steps < 2:
        raise RequestError("n_steps", f"{method} needs at least 2 steps, got {n_steps}")
    baseline = choice_field(body, "baseline", default_baseline(loaded.tokenizer), BASELINES)
    if baseline in TOKEN_BASELINES:
        baseline_token_id(loaded.tokenizer, baseline)  # the model may lack that token
    fmt = choice_field(body, "format", "json", GRADIENT_FORMATS)
    request = GradientsRequest(
        text=text,
        text_pair=text_pair,
        target=target_field(body, loaded),
        baseline=baseline,
        baseline_specials=choice_field(body, "baseline_specials", "keep", SPECIALS),
        seed=int_field(body, "seed", 0, 0, 2**32 - 1),
        n_steps=n_steps,
        method=method,
        returns=returns_field(body, fmt),
        format=fmt,
    )
    n_tokens = len(loaded.tokenizer(text, text_pair, truncation=True, max_length=loaded.max_tokens)["input_ids"])
    width = loaded.model.get_input_embeddings().embedding_dim
    check_gradients_size(request, n_tokens, width, settings)
    return request
