"""The wire contract (v1): every request and response as a pydantic model.

These models are the one source of truth: requests are validated with them (strict: a bool
is not an int, a float is not an int; unknown fields are refused with a did-you-mean hint),
`docs/schema/exformer-v1.schema.json` is generated from them (`python -m exformer.schema`)
and the visualizer's TypeScript types from that file. Ranges that depend on the model —
layers, heads, the mask token, targets, top_k — are checked when the loaded model is given
as validation context:

>>> AttentionRequest.model_validate({"text": "The cat sat.", "layers": [0]}).layers
[0]
>>> parse(AttentionRequest, {"text": "a", "top-k": 3}).message
"top-k: unknown field; did you mean 'top_k'?"
"""

import difflib
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .errors import RequestError

# --- shared vocabulary ------------------------------------------------------------------------

Encoding = Literal["json", "float16-base64"]
Baseline = Literal["zero", "pad", "unk", "mask", "period", "rand-norm", "rand-unif"]
Method = Literal["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid",  # captum's
                 "fejer", "gausskronrod"]  # nested, for n_steps "auto" (fejer its default): exformer/adaptive.py
Format = Literal["json", "npz", "torch-gzip"]
Returned = Literal["attributions", "intermediate_gradients", "step_sizes", "intermediates", "path_scores"]
Score = Literal["probability", "logit", "log_probability"]
Aggregate = Literal["token", "word"]

BASELINES, GRADIENT_METHODS = get_args(Baseline), get_args(Method)
FIXED_METHODS = GRADIENT_METHODS[:-2]  # a given number of points
NESTED_METHODS = GRADIENT_METHODS[-2:]  # refine reusing their points: what n_steps "auto" runs
DEFAULT_TOLERANCE = 0.01
TOKEN_BASELINES = ("pad", "unk", "mask", "period")  # one token id at every replaced position
DEFAULT_RETURNS = {
    "json": ("attributions", "step_sizes", "path_scores"),  # the summary: small
    "npz": get_args(Returned),
    "torch-gzip": ("attributions", "intermediate_gradients", "step_sizes", "intermediates"),  # old keys
}
GRADIENT_HEADS = ("sequence-classification", "causal-lm")
Index = Annotated[int, Field(ge=0)]
HeadAggregate = Literal["mean", "max"]
HEAD_AGGREGATES = get_args(HeadAggregate)


def _fail(message: str, kind: str = "exformer") -> PydanticCustomError:
    """A validation error with our own message; kind "too_large" becomes a 413."""
    return PydanticCustomError(kind, message)


def _json(value: Any, limit: int = 80) -> str:
    text = orjson.dumps(value, default=repr).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _context(info: ValidationInfo) -> tuple[Any, Any]:
    """(loaded model, settings) when validating against a model; (None, None) otherwise."""
    context = info.context or {}
    model = context.get("model")
    return model, (model.settings if model is not None else None)


def _check_text(value: str | None, info: ValidationInfo) -> str | None:
    if value is None:
        return None
    if not value.strip():
        raise _fail("must not be empty")
    _, settings = _context(info)
    if settings is not None and len(value) > settings.max_text_chars:
        raise _fail(f"has {len(value)} characters; this model accepts at most {settings.max_text_chars}",
                    "too_large")
    return value


def _check_indices(value: Any, size: int | None, what: str, words: tuple[str, ...] = ("all",)) -> Any:
    """One of `words` ('all'), or a non-empty list of distinct indices in [0, size)."""
    if value in words:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise _fail(f"must be {' or '.join(_json(w) for w in words)} or a list of integers, got {_json(value)}")
    if not value:
        raise _fail('must not be empty (use "all")')
    bad = [v for v in value if v < 0 or (size is not None and v >= size)]
    if bad:
        span = f"this model has {what} 0..{size - 1}" if size is not None else f"{what} are numbered from 0"
        raise _fail(f"{bad} out of range: {span}")
    if len(set(value)) != len(value):
        raise _fail("has duplicates")
    return value


def _given_with_auto(value: Any, info: ValidationInfo, hint: str) -> bool:
    """Whether an n_steps "auto" option was given; refused (rather than dropped) beside a fixed n_steps."""
    if value is None:
        return False
    if info.data.get("n_steps") != "auto":
        raise _fail(f'applies only to "n_steps": "auto" ({hint})')
    return True


class Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


# --- requests -----------------------------------------------------------------------------------


class AttentionRequest(Request):
    """`POST /predictions/<model>-attention`. An empty body asks for the model's details only."""

    text: str | None = Field(None, description="The text to explain; omit (with every other field) for the model's details.")
    text_pair: str | None = Field(None, description="A second segment (sentence pairs).")
    layers: Literal["all"] | list[Index] = Field("all", description='Layers to return: "all" or indices.')
    heads: Literal["all", "mean", "max"] | list[Index] = Field(
        "all", description='Heads to return: "all", indices, or "mean" / "max": one map per layer, that aggregate '
                           "of every head (the head axis has size 1); a head-count times smaller, for long prompts.")
    mask: list[Index] | None = Field(None, description="Token indices to replace by the mask token before the forward.")
    top_k: int | None = Field(None, ge=1, description="Predictions per token (masked/causal LMs); default: the archive's (5).")
    encoding: Encoding = Field("json", description="json: exact float32 numbers; float16-base64: ~6x smaller.")
    top_k_per_row: int | None = Field(
        None, ge=1, description="Sparse answer: of every row of every T×T matrix (attention, rollout) only the k "
                                "largest values and their columns, with each row's kept and remaining mass; values in "
                                "`encoding`. For 1-2k-token prompts.")
    rollout: bool | Literal["only"] = Field(
        False, description="true: add `rollout` (Abnar & Zuidema 2020) for the requested layers; \"only\": rollout "
                           "without `attention`.")

    @model_validator(mode="after")
    def _text_unless_details(self):
        if self.text is None and self.model_fields_set - {"text"}:
            raise RequestError("text", "is required (a non-empty string)")
        return self

    @field_validator("text", "text_pair")
    @classmethod
    def _text(cls, value, info: ValidationInfo):
        return _check_text(value, info)

    @field_validator("layers", "heads", mode="before")
    @classmethod
    def _indices(cls, value, info: ValidationInfo):
        model, _ = _context(info)
        cfg = model.config if model is not None else None
        size = None if cfg is None else cfg.num_hidden_layers if info.field_name == "layers" else cfg.num_attention_heads
        words = ("all", *HEAD_AGGREGATES) if info.field_name == "heads" else ("all",)
        return _check_indices(value, size, info.field_name, words)

    @model_validator(mode="after")
    def _rollout_only_takes_no_heads(self):
        if self.rollout == "only" and "heads" in self.model_fields_set:
            raise RequestError("heads", 'has no effect with "rollout": "only" (rollout averages every head); '
                                        "leave it out, or ask rollout: true for both")
        return self

    @field_validator("mask", mode="before")
    @classmethod
    def _mask(cls, value, info: ValidationInfo):
        model, _ = _context(info)
        if value is not None and model is not None and model.tokenizer.mask_token_id is None:
            raise _fail(f"{model.name} has no mask token; it cannot mask tokens")
        if value is None:
            return value
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise _fail(f"must be a list of token indices, got {_json(value)}")
        bad = [v for v in value if v < 0]
        if bad:
            raise _fail(f"{bad} out of range: token indices count from 0")
        if len(set(value)) != len(value):
            raise _fail("has duplicates")
        return value

    @field_validator("top_k")
    @classmethod
    def _top_k(cls, value, info: ValidationInfo):
        model, _ = _context(info)
        if value is not None and model is not None and value > len(model.tokenizer):
            raise _fail(f"must be between 1 and {len(model.tokenizer)} (the vocabulary), got {value}")
        return value


class Generate(Request):
    """`generate`: greedy decoding of the continuation to explain."""

    max_new_tokens: int = Field(ge=1, description="Tokens to generate (at most the archive's max_new_tokens).")


Foil = Index | str | list[Index | str]


class GradientsRequest(Request):
    """`POST /predictions/<model>-gradients` (and `/explanations/<model>-gradients`)."""

    text: str | None = Field(None, validation_alias=AliasChoices("text", "sequence"),
                             description='The text to explain ("sequence" is accepted, the old server\'s name); '
                                         "omit (with every other field) for the model's details.")
    text_pair: str | None = Field(None, description="A second segment (sentence pairs).")
    target: Index | str | None = Field(
        None, description="Classifier: class index or label. Causal LM: next token (text of one token, or id). "
                          "Default: the model's own prediction.")
    baseline: Baseline | None = Field(None, validate_default=True, description='Where the path starts; default "pad" ("zero" without a pad token).')
    baseline_specials: Literal["keep", "replace"] = Field(
        "keep", description='"keep" special tokens in the baseline (only content is explained); "replace": the old server.')
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the rand-norm / rand-unif baselines.")
    method: Method = Field("gausslegendre", description='captum\'s approximation method; with n_steps "auto": '
                                                        '"fejer" (the default there) or "gausskronrod" (the '
                                                        'default with continuation/generate).')
    n_steps: int | Literal["auto"] = Field(
        50, description='Points along the path (at most the archive\'s max_n_steps), or "auto": refine until '
                        '|convergence_delta| <= tolerance x |F(x) - F(x\')|.')
    tolerance: float | None = Field(
        None, description=f'n_steps "auto": the relative convergence delta to reach, 0 < tolerance < 1 '
                          f'(default {DEFAULT_TOLERANCE}).')
    max_n_steps: int | None = Field(
        None, description='n_steps "auto": the most gradients to compute (default and ceiling: the archive\'s max_n_steps).')
    score: Score = Field("probability", description="F: softmax probability of the target, or its raw logit (the old server).")
    returns: list[Returned] | None = Field(
        None, alias="return", description="What to return; default by format (json: the summary).")
    format: Format = Field("json", description="json summary, npz (numpy), or torch-gzip (the old server's file).")
    continuation: str | None = Field(
        None, description="Causal LM: the text that follows `text` (tokenized without special tokens); "
                          "every one of its tokens is a target, attributed to the prompt and the earlier target tokens.")
    generate: Generate | None = Field(
        None, description="Causal LM: generate the continuation greedily (deterministic) instead of giving it.")
    foil: Foil | None = Field(
        None, description="Contrastive targets (with continuation/generate): one token (text or id) for every "
                          "target, or one per target token; F = p(target) - p(foil) (logit difference with "
                          'score "logit" or "log_probability").')
    continuation_baseline: Literal["replace", "keep"] = Field(
        "replace", description='With continuation/generate: "replace": earlier target tokens start from the baseline '
                               'like the prompt; "keep": they stay themselves along the path (captum\'s '
                               "LLMGradientAttribution), so only the prompt is explained.")
    aggregate: Aggregate = Field(
        "token", description='"word": also sum the attributions over each word\'s tokens (whitespace-separated, '
                             "from the tokenizer's offsets); the token values stay.")

    @model_validator(mode="before")
    @classmethod
    def _explainable(cls, body, info: ValidationInfo):
        model, _ = _context(info)
        if body and model is not None and model.head not in GRADIENT_HEADS:
            raise RequestError("model", f"{model.name} has no classification or causal-LM head, so no score to attribute")
        if isinstance(body, dict) and "text" in body and "sequence" in body:
            raise RequestError("sequence", 'is the old name of "text"; give one of them, not both')
        return body

    @model_validator(mode="after")
    def _text_unless_details(self):
        if self.text is None and self.model_fields_set - {"text"}:
            raise RequestError("text", "is required (a non-empty string)")
        return self

    @field_validator("target")
    @classmethod
    def _target(cls, value, info: ValidationInfo):
        """With a model: resolved to the class index or token id it names."""
        model, _ = _context(info)
        return value if value is None or model is None else resolve_target(model, value)

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, value, info: ValidationInfo):
        """With a model: the default resolved, and a token baseline the tokenizer lacks refused."""
        model, _ = _context(info)
        if model is None:
            return value
        from .baselines import baseline_token_id, default_baseline

        value = value or default_baseline(model.tokenizer)
        if value in TOKEN_BASELINES:
            baseline_token_id(model.tokenizer, value)
        return value

    @model_validator(mode="after")
    def _generation(self, info: ValidationInfo):
        """continuation/generate/foil: causal LMs only, one of the two, no next-token `target`."""
        model, settings = _context(info)
        asked = [name for name in ("continuation", "generate", "foil") if getattr(self, name) is not None]
        if model is not None and asked and model.head != "causal-lm":
            raise RequestError(asked[0], f"{model.name} is not a causal LM; only causal LMs continue a text")
        if self.continuation is not None and self.generate is not None:
            raise RequestError("generate", 'give "continuation" or "generate", not both')
        if self.generation:
            if self.target is not None:
                raise RequestError("target", 'with "continuation"/"generate" every target token is a target; '
                                             'leave "target" out (use "foil" for a contrast)')
            if self.text_pair is not None:
                raise RequestError("text_pair", 'a continuation follows one text; leave "text_pair" out')
        elif self.foil is not None:
            raise RequestError("foil", 'needs "continuation" or "generate" (the targets to contrast)')
        if self.continuation is not None and not self.continuation:
            raise RequestError("continuation", "must not be empty")
        if self.generate is not None and settings is not None and self.generate.max_new_tokens > settings.max_new_tokens:
            raise RequestError("generate", f"max_new_tokens must be between 1 and {settings.max_new_tokens} "
                                           f"(this archive's max_new_tokens), got {self.generate.max_new_tokens}")
        if isinstance(self.foil, list) and not self.foil:
            raise RequestError("foil", "must not be an empty list")
        if model is not None and self.foil is not None:
            foils = self.foil if isinstance(self.foil, list) else [self.foil]
            for foil in foils:
                resolve_target(model, foil, "foil")
        return self

    @property
    def generation(self) -> bool:
        """Whether this request explains a continuation (several targets) rather than one score."""
        return self.continuation is not None or self.generate is not None

    @field_validator("returns", mode="before")
    @classmethod
    def _one_return(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("text", "text_pair")
    @classmethod
    def _text(cls, value, info: ValidationInfo):
        return _check_text(value, info)

    @model_validator(mode="before")
    @classmethod
    def _auto_defaults(cls, body):
        """n_steps "auto" without a method runs a nested one, with the default tolerance: Fejér for
        one target; Gauss–Kronrod for a continuation, whose later rows have narrow spikes that
        only local refinement reaches (SmolLM2 " Paris, the": converged at 915 points where Fejér
        had not at 2047; README "Explaining generations")."""
        if isinstance(body, dict) and body.get("n_steps") == "auto":
            several = body.get("continuation") is not None or body.get("generate") is not None
            body = {"method": "gausskronrod" if several else NESTED_METHODS[0], "tolerance": DEFAULT_TOLERANCE, **body}
        return body

    @field_validator("n_steps", mode="before")
    @classmethod
    def _n_steps_type(cls, value):
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise _fail(f'must be an integer or "auto", got {_json(value)}')

    @field_validator("n_steps")
    @classmethod
    def _n_steps(cls, value, info: ValidationInfo):
        method = info.data.get("method", "gausslegendre")
        if value == "auto":
            if method not in NESTED_METHODS:
                raise RequestError("method", f'{method} is not nested (its points cannot be reused when refined); '
                                             f'n_steps "auto" runs {" or ".join(NESTED_METHODS)}')
            return value
        if method in NESTED_METHODS:
            raise _fail(f'{method} is adaptive: use "n_steps": "auto", or a fixed method with {value} steps')
        _, settings = _context(info)
        top = settings.max_n_steps if settings is not None else None
        if value < 1 or (top is not None and value > top):
            raise _fail(f"must be between 1 and {top} (this archive's max_n_steps), got {value}" if top
                        else f"must be at least 1, got {value}")
        if value < 2 and method != "gausslegendre":
            raise _fail(f"{method} needs at least 2 steps, got {value}")
        return value

    @field_validator("tolerance", mode="before")
    @classmethod
    def _tolerance(cls, value, info: ValidationInfo):
        if not _given_with_auto(value, info, "a fixed n_steps has no tolerance"):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise _fail(f"must be a number between 0 and 1 (exclusive), e.g. 0.01 for 1%, got {_json(value)}")
        return float(value)

    @field_validator("max_n_steps", mode="before")
    @classmethod
    def _max_n_steps(cls, value, info: ValidationInfo):
        if not _given_with_auto(value, info, "give the number of steps in n_steps"):
            return value
        from .quadrature import KRONROD_POINTS

        _, settings = _context(info)
        top = settings.max_n_steps if settings is not None else None
        if isinstance(value, bool) or not isinstance(value, int) or value < KRONROD_POINTS or (top and value > top):
            upper = f" and {top} (this archive's max_n_steps)" if top else ""
            raise _fail(f"must be an integer between {KRONROD_POINTS} (one Gauss-Kronrod rule){upper}, "
                        f"got {_json(value)}")
        return value

    def most_steps(self, settings) -> int:
        """The most path points this request can use: n_steps, or "auto"'s max_n_steps."""
        if self.n_steps != "auto":
            return self.n_steps
        return self.max_n_steps or settings.max_n_steps

    @field_validator("returns")
    @classmethod
    def _returns(cls, value):
        if value is not None and len(set(value)) != len(value):
            raise _fail("has duplicates")
        return value

    @property
    def returned(self) -> tuple[str, ...]:
        """What the response carries: `return`, or the format's default."""
        return tuple(self.returns) if self.returns is not None else DEFAULT_RETURNS[self.format]


# --- responses ----------------------------------------------------------------------------------


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelDetails(Response):
    """The `model` block of every response (and the whole answer to an empty attention body)."""

    name: str
    type: str
    architecture: str
    kind: Literal["bidirectional", "autoregressive"]
    n_layers: int
    n_heads: int
    vocab_size: int
    max_tokens: int
    head: Literal["masked-lm", "causal-lm", "sequence-classification"] | None
    predictions: Literal["masked-token", "next-token"] | None
    mask_token: str | None
    labels: list[str] | None


class TokenPrediction(Response):
    token: str
    text: str
    id: int
    prob: float


class Token(Response):
    """One token: what the tokenizer made of the input, and where it came from."""

    index: int
    text: str = Field(description="The tokenizer's token string.")
    id: int
    start: int | None = Field(description="Character offset in its segment's text; null for special tokens.")
    end: int | None
    surface: str | None = Field(description="The characters of the input it covers.")
    segment: Literal[0, 1] | None = Field(description="0: text, 1: text_pair, null: special token.")
    special: bool
    masked: bool | None = Field(None, description="Attention only: replaced by the mask token.")
    predictions: list[TokenPrediction] | None = Field(
        None, description="Attention only: top-k tokens at this position (masked LM) or after it (causal LM).")


class JsonArray(Response):
    encoding: Literal["json"]
    shape: list[int]
    data: list[Any] = Field(description="Nested lists of float32 values, `shape` deep.")


class Float16Array(Response):
    encoding: Literal["float16-base64"]
    dtype: Literal["float16"]
    byteorder: Literal["little"]
    shape: list[int]
    data: str = Field(description="base64 of the little-endian float16 values, row-major.")


class JsonIndexArray(Response):
    encoding: Literal["json"]
    shape: list[int]
    data: list[Any] = Field(description="Nested lists of integers, `shape` deep.")


class Base64IndexArray(Response):
    encoding: Literal["base64"]
    dtype: Literal["uint16", "uint32"]
    byteorder: Literal["little"]
    shape: list[int]
    data: str = Field(description="base64 of the little-endian unsigned integers, row-major.")


_AGGREGATE = Field(None, description='Set when `heads` was asked as "mean" or "max": the head axis (size 1) holds '
                                     "that aggregate over the heads listed in `heads` (every head).")


class JsonAttention(JsonArray):
    layers: list[int]
    heads: list[int]
    aggregate: HeadAggregate | None = _AGGREGATE


class Float16Attention(Float16Array):
    layers: list[int]
    heads: list[int]
    aggregate: HeadAggregate | None = _AGGREGATE


class SparseRows(Response):
    """A stack of T×T matrices sent as the k largest values of every row (`top_k_per_row`).

    Nothing is dropped silently: `kept` + `rest` is each row's whole sum (1 for an attention or
    rollout row), and `min_kept_fraction` is the least any row kept. Dense again: zeros, then
    `dense[..., i, columns[..., i, j]] = values[..., i, j]`.
    """

    encoding: Literal["topk-per-row"]
    shape: list[int] = Field(description="The dense shape [..., T, T].")
    k: int = Field(description="Values per row: top_k_per_row, at most T.")
    values: JsonArray | Float16Array = Field(description="[..., T, k], largest first, in the request's encoding.")
    columns: JsonIndexArray | Base64IndexArray = Field(
        description="[..., T, k]: the column (token attended to) of each value; base64 uint16/uint32 with float16-base64.")
    kept: JsonArray | Float16Array = Field(description="[..., T]: Σ values of each row.")
    rest: JsonArray | Float16Array = Field(description="[..., T]: each row's sum minus `kept`, the mass not sent.")
    min_kept_fraction: float = Field(description="min over rows of kept / (kept + rest).")


class SparseAttention(SparseRows):
    layers: list[int]
    heads: list[int]
    aggregate: HeadAggregate | None = _AGGREGATE


_ROLLOUT_DOC = ("[layers, T, T]: R_l = Ã_l · R_(l-1), Ã_l = rows-normalised (0.5 · mean over heads of A_l + 0.5 · I), "
                "R_(-1) = I (Abnar & Zuidema 2020): how much input token j (column) reaches token i (row) after layer l.")


class JsonRollout(JsonArray):
    layers: list[int] = Field(description="The model's layer index of each returned map.")


class Float16Rollout(Float16Array):
    layers: list[int] = Field(description="The model's layer index of each returned map.")


class SparseRollout(SparseRows):
    layers: list[int] = Field(description="The model's layer index of each returned map.")


class ClassPrediction(Response):
    label: str
    probabilities: dict[str, float]


class NextTokenPrediction(Response):
    next_tokens: list[TokenPrediction]


class Truncation(Response):
    truncated: bool = Field(description="True when the input was cut to the model's max_tokens.")
    n_tokens_input: int = Field(description="Tokens before truncation.")
    n_tokens_dropped: int


class AttentionResponse(Truncation):
    model: ModelDetails
    tokens: list[Token]
    attention: JsonAttention | Float16Attention | SparseAttention | None = Field(
        None, description="[layers, heads, tokens, tokens]: attention from each token (row) to each token (column); "
                          'absent with "rollout": "only".')
    rollout: JsonRollout | Float16Rollout | SparseRollout | None = Field(
        None, description=_ROLLOUT_DOC + " Present when asked (rollout: true or \"only\").")
    prediction: ClassPrediction | None = Field(None, description="Classifiers only.")


class ModelDetailsResponse(Response):
    model: ModelDetails


class Target(Response):
    index: int
    label: str | None = None
    token: str | None = None
    text: str | None = None
    score: float = Field(description="F(x): the score attributed, at the input.")


class BaselineUsed(Response):
    name: Baseline
    specials: Literal["keep", "replace"]
    seed: int | None
    score: float = Field(description="F(x'): the score at the baseline.")


class Attributions(Response):
    raw: list[float] = Field(description="Per token: the integrated gradients summed over the hidden size.")
    normalized: list[float] = Field(description="raw / its L2 norm.")


class Word(Response):
    """A whitespace-separated word of one segment, and the tokens that make it up (from the offsets)."""

    text: str
    start: int = Field(description="Character offset in its segment's text (the prompt, or the continuation).")
    end: int
    segment: Literal[0, 1] = Field(description="Classifier: 0 text, 1 text_pair. Generation: 0 prompt, 1 continuation.")
    tokens: list[int] = Field(description="Indices into `tokens`.")


class PathResponse(Truncation):
    """What every gradients answer says of its path: the model, F, the rule and what computed it."""

    model: ModelDetails
    score: Score
    method: Method
    n_steps: int = Field(description='Points of the rule used; with "auto", as many as the refinement kept.')
    dtype: Literal["float32", "bfloat16"] = Field(description="What computed the gradients (bfloat16: autocast).")
    alphas: list[float] | None = None
    step_sizes: list[float] | None = None
    intermediates: JsonArray | None = Field(None, description="[n_steps, tokens, hidden] path points, when asked.")
    tolerance: float | None = Field(
        None, description='n_steps "auto": the relative convergence delta asked for; null for a fixed n_steps.')
    converged: bool | None = Field(
        None, description='n_steps "auto": whether |convergence_delta| <= tolerance x |F(x) - F(x\')| (and the '
                          'local error estimate) was reached within max_n_steps, for every target of a '
                          'continuation; null for a fixed n_steps.')


class GradientsResponse(PathResponse):
    """The JSON summary (`format: json`, and the `summary` entry of an npz)."""

    tokens: list[Token]
    prediction: ClassPrediction | NextTokenPrediction
    target: Target
    baseline: BaselineUsed
    convergence_delta: float = Field(description="Σ attributions − (F(x) − F(x')): the quadrature's error.")
    attributions: Attributions | None = None
    path_scores: list[float] | None = Field(None, description="F at each path point.")
    gradient_norms: list[float] | None = Field(None, description="‖∂F/∂x‖ at each path point.")
    intermediate_gradients: JsonArray | None = Field(None, description="[n_steps, tokens, hidden], when asked in `return`.")
    words: list[Word] | None = Field(None, description='`aggregate: "word"`: the words of the text.')
    word_attributions: Attributions | None = Field(None, description='`aggregate: "word"`: per word, the sum over its tokens.')


class GenerationToken(Token):
    """A prompt token, or (`target: true`) a token of the continuation; a target token's start/end
    are offsets in the continuation and its segment is 1."""

    target: bool


class TokenChoice(Response):
    id: int
    token: str = Field(description="The tokenizer's token string.")
    text: str = Field(description="The token decoded.")
    probability: float = Field(description="p(token | prefix) at the input.")


class GenerationTarget(Response):
    """One target token: what the model made of its prefix, and the prefix's attributions."""

    position: int = Field(description="Index into `tokens`.")
    id: int
    token: str
    text: str
    probability: float = Field(description="p(y_t | prompt, y_<t) at the input.")
    entropy: float = Field(description="Entropy of that next-token distribution, in nats.")
    alternatives: list[TokenChoice] = Field(description="The top-k next tokens at the input (the archive's default_top_k).")
    foil: TokenChoice | None
    score: float = Field(description="F_t(x): the score attributed.")
    baseline_score: float = Field(description="F_t(x').")
    convergence_delta: float = Field(description="Σ attributions − (F_t(x) − F_t(x')).")
    attributions: Attributions | None = Field(
        None, description="One value per preceding token: len(prompt) + t values for the t-th target.")
    word_attributions: Attributions | None = Field(
        None, description='`aggregate: "word"`: per word that the row covers (a word partly inside sums its included tokens).')
    path_scores: list[float] | None = Field(None, description="F_t at each path point.")


class GenerationBaseline(Response):
    name: Baseline
    specials: Literal["keep", "replace"]
    continuation: Literal["replace", "keep"] = Field(description="Whether earlier target tokens start from the baseline.")
    seed: int | None


class GenerationResponse(PathResponse):
    """The JSON summary of a continuation/generate request: one attribution row per target token."""

    tokens: list[GenerationToken]
    continuation: str = Field(description="The continuation explained (given, or generated).")
    generated: bool
    targets: list[GenerationTarget]
    contrastive: bool = Field(description="Whether F is a difference against foils.")
    baseline: GenerationBaseline
    words: list[Word] | None = Field(None, description='`aggregate: "word"`: the words of the prompt, then of the continuation.')
    intermediate_gradients: JsonArray | None = Field(None, description="[targets, n_steps, tokens, hidden], when asked.")


class ErrorResponse(Response):
    """Every 4xx/5xx we answer. `field` names what was wrong (4xx)."""

    code: int
    type: str
    message: str
    field: str | None = None


CONTRACT_MODELS = (AttentionRequest, GradientsRequest, AttentionResponse, ModelDetailsResponse,
                   GradientsResponse, GenerationResponse, ErrorResponse,
                   SparseRows, PathResponse)  # bases the generated types extend


# --- validation → one RequestError ----------------------------------------------------------

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
            reason = "is not UTF-8 text" if "utf-8" in str(error).lower() else f"is not JSON ({error})"
            raise RequestError("body", reason) from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise RequestError("body", f"must be a JSON object, got {type(body).__name__}")
    return body


def parse(model_class: type[Request], body, loaded=None) -> Request | RequestError:
    """Validate a body against a request model; the first problem as a RequestError, or the request.

    Returns the error rather than raising it so that the caller decides (the handlers answer it).
    """
    try:
        return model_class.model_validate(decode_body(body), context={"model": loaded})
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
    if kind == "extra_forbidden":
        field = loc[0]
        known = sorted(f.alias or name for name, f in model_class.model_fields.items())
        hint = difflib.get_close_matches(field, known, n=1)
        return RequestError(field, f"unknown field; did you mean '{hint[0]}'?" if hint else f"unknown field; known fields: {known}")
    field = _field_name(loc, model_class, first)
    if kind in ("exformer", "too_large"):
        return RequestError(field, first["msg"], code=413 if kind == "too_large" else 400)
    if kind == "missing":
        return RequestError(field, "is required")
    phrase = _PHRASES.get(kind) or first["msg"][0].lower() + first["msg"][1:]
    return RequestError(field, f"{phrase}, got {_json(value)}")


def resolve_target(model, value: int | str, field: str = "target") -> int:
    """Classifier: class index or label. Causal LM: next-token id, token string or one-token text."""
    if model.head == "sequence-classification":
        labels = model.labels
        if isinstance(value, int):
            if value < len(labels):
                return value
            raise RequestError("target", f"class {value} out of range: this model has classes 0..{len(labels) - 1} {labels}")
        if value in labels:
            return labels.index(value)
        raise RequestError("target", f"unknown label {_json(value)}; labels: {labels}")
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
            raise RequestError(field, f"{_json(value)} is {len(ids)} tokens {pieces}; give one token or its id")
        token_id = ids[0]
    if token_id >= n_ids:
        raise RequestError(field, f"token id {token_id} is not among the model's {n_ids} outputs")
    return token_id


def _field_name(loc: list[str], model_class, first) -> str:
    """The request field at fault, as the client spelled it (aliases included)."""
    if not loc:
        return "body"
    name = loc[0]
    if name in model_class.model_fields:
        alias = model_class.model_fields[name].alias
        return alias or name
    return name
