"""The rules a request meets only against the loaded model, next to it: the archive's limits,
layer and head ranges, the mask token, targets and foils (resolved to ids), baselines (the
default resolved), and which heads can be explained at all. The model-free rules are the
contract's (exformer.contract.requests); `parse_request` applies both, in that order.

Each check raises RequestError naming the field; the checked request comes back with what
the model resolved filled in (a gradients request's `target` as an index or id, `baseline`).
"""

from typing import Any, TypeVar, cast

from ..contract.errors import RequestError, json_excerpt
from ..contract.parsing import parse
from ..contract.requests import AttentionRequest, GradientsRequest, Request, TextRequest
from ..contract.vocabulary import DEFAULT_ABLATIONS, DEFAULT_HOLDOUT, GRADIENT_HEADS, TOKEN_BASELINES
from ..core.baselines import baseline_token_id, default_baseline
from ..core.loading import LoadedModel, bfloat16_not_native

R = TypeVar("R", bound=TextRequest)


def parse_request(loaded: LoadedModel, model_class: type[R], body) -> R | RequestError:
    """A body → the checked request, or the first problem as a RequestError (returned, not
    raised: the caller answers it)."""
    request = parse(model_class, body)
    if isinstance(request, RequestError):
        return request
    try:
        return cast(R, check(loaded, request))  # a model_class, as parsed (with what the checks resolved)
    except RequestError as error:
        return error


def check(loaded: LoadedModel, request: Request) -> TextRequest:
    """The model's rules for a parsed request; the request with what they resolved."""
    if isinstance(request, AttentionRequest):
        return check_attention(loaded, request)
    if isinstance(request, GradientsRequest):
        return check_gradients(loaded, request)
    raise TypeError(f"no checks for {type(request).__name__}")


def _text(loaded: LoadedModel, request: TextRequest) -> None:
    limit = loaded.settings.max_text_chars
    for field in ("text", "text_pair", "continuation"):
        value = getattr(request, field, None)
        if value is not None and len(value) > limit:
            raise RequestError(
                field,
                f"has {len(value)} characters; this archive accepts at most {limit} (its max_text_chars)",
                code=413,
            )


def _within(values, size: int, what: str) -> None:
    if isinstance(values, list):
        bad = [v for v in values if v >= size]
        if bad:
            raise RequestError(what, f"{bad} out of range: this model has {what} 0..{size - 1}")


def check_attention(loaded: LoadedModel, request: AttentionRequest) -> AttentionRequest:
    if request.details_only:
        return request
    cfg = loaded.config
    _text(loaded, request)
    _within(request.layers, cfg.num_hidden_layers, "layers")
    _within(request.heads, cfg.num_attention_heads, "heads")
    if request.mask is not None and loaded.tokenizer.mask_token_id is None:
        raise RequestError("mask", f"{loaded.name} has no mask token; it cannot mask tokens")
    vocabulary = len(loaded.tokenizer)
    if request.top_k is not None and request.top_k > vocabulary:
        raise RequestError("top_k", f"must be between 1 and {vocabulary} (the vocabulary), got {request.top_k}")
    return request


def check_gradients(loaded: LoadedModel, request: GradientsRequest) -> GradientsRequest:
    if request.details_only:
        return request
    settings = loaded.settings
    if loaded.head not in GRADIENT_HEADS:
        raise RequestError("model", f"{loaded.name} has no classification or causal-LM head, so no score to attribute")
    if request.messages is not None:
        _conversation(loaded, request)
    _text(loaded, request)
    resolved: dict[str, Any] = {}
    if request.target is not None:
        resolved["target"] = resolve_target(loaded, request.target)
    baseline = request.baseline or default_baseline(loaded.tokenizer)
    if baseline in TOKEN_BASELINES:
        baseline_token_id(loaded.tokenizer, baseline)  # refuses a token the tokenizer lacks
    resolved["baseline"] = baseline
    top = settings.max_n_steps
    if request.n_steps != "auto" and request.n_steps > top:
        raise RequestError(
            "n_steps", f"must be between 1 and {top} (this archive's max_n_steps), got {request.n_steps}"
        )
    if request.max_n_steps is not None and request.max_n_steps > top:
        raise RequestError(
            "max_n_steps", f"must be at most {top} (this archive's max_n_steps), got {request.max_n_steps}"
        )
    asked = [name for name in ("continuation", "generate", "foil") if getattr(request, name) is not None]
    if asked and loaded.head != "causal-lm":
        raise RequestError(asked[0], f"{loaded.name} is not a causal LM; only causal LMs continue a text")
    if request.generate is not None and request.generate.max_new_tokens > settings.max_new_tokens:
        raise RequestError(
            "generate.max_new_tokens",
            f"must be between 1 and {settings.max_new_tokens} (this "
            f"archive's max_new_tokens), got {request.generate.max_new_tokens}",
        )
    _ablations(loaded, request)
    if request.foil is not None:
        for foil in request.foil if isinstance(request.foil, list) else [request.foil]:
            resolve_target(loaded, foil, "foil")
    if request.dtype == "bfloat16" and not loaded.native_bfloat16:
        why = bfloat16_not_native(loaded.device) or "bf16 was not native when the model loaded"
        raise RequestError(
            "dtype",
            f'"bfloat16" needs native bf16, but {why}: emulated bf16 autocast measured '
            "~34x slower than float32; leave dtype out (float32)",
        )
    if (
        request.ablation == "baseline"
        and request.attribution != "integrated_gradients"
        and baseline not in TOKEN_BASELINES
    ):
        raise RequestError(
            "baseline",
            f'ablation "baseline" puts one token in place of each left-out token: '
            f"{', '.join(TOKEN_BASELINES)}, not {baseline}",
        )
    return request.model_copy(update=resolved)


def _ablations(loaded: LoadedModel, request: GradientsRequest) -> None:
    """contextcite's masks, fitted and held out, within the archive's max_ablations (occlusion's
    count is its units': exformer.explain.ablations.check_count)."""
    if request.attribution != "contextcite":
        return
    limit = loaded.settings.max_ablations
    fitted = request.n_ablations or DEFAULT_ABLATIONS
    held = DEFAULT_HOLDOUT if request.n_holdout is None else request.n_holdout
    if fitted + held > limit:
        given_holdout = request.n_holdout is not None and (request.n_ablations is None or held >= fitted)
        field = "n_holdout" if given_holdout else "n_ablations"  # the larger of those the client gave
        raise RequestError(
            field,
            f"n_ablations + n_holdout = {fitted} + {held} is over this archive's max_ablations "
            f"({limit}); ask for fewer, or raise max_ablations in the model-config",
        )


def _conversation(loaded: LoadedModel, request: GradientsRequest) -> None:
    if loaded.head != "causal-lm":
        raise RequestError(
            "messages",
            f"{loaded.name} is not a causal LM (its head: {loaded.head}); a conversation "
            "is explained by a chat model's answer",
        )
    if not getattr(loaded.tokenizer, "chat_template", None):
        raise RequestError("messages", f'{loaded.name}\'s tokenizer has no chat template; send the prompt as "text"')
    limit = loaded.settings.max_text_chars
    total = sum(len(m.content) for m in request.messages)
    if total > limit:
        raise RequestError("messages", f"have {total} characters; this model accepts at most {limit}", code=413)


def resolve_target(model, value: int | str, field: str = "target") -> int:
    """Classifier: class index or label. Causal LM: next-token id, token string or one-token text."""
    if model.head == "sequence-classification":
        labels = model.labels
        if isinstance(value, int):
            if value < len(labels):
                return value
            raise RequestError(
                "target", f"class {value} out of range: this model has classes 0..{len(labels) - 1} {labels}"
            )
        if value in labels:
            return labels.index(value)
        raise RequestError("target", f"unknown label {json_excerpt(value)}; labels: {labels}")
    tokenizer = model.tokenizer
    n_ids = min(model.config.vocab_size, len(tokenizer))
    if isinstance(value, int):
        if value < n_ids:
            return value
        raise RequestError(field, f"token id {value} out of range 0..{n_ids - 1}")
    if not value:
        raise RequestError(field, "must be one token (text or id), got an empty string")
    token_id = tokenizer.get_vocab().get(value)
    if token_id is None:
        ids = tokenizer(value, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            pieces = tokenizer.convert_ids_to_tokens(ids)
            raise RequestError(field, f"{json_excerpt(value)} is {len(ids)} tokens {pieces}; give one token or its id")
        token_id = ids[0]
    if token_id >= n_ids:
        raise RequestError(field, f"token id {token_id} is not among the model's {n_ids} outputs")
    return token_id
