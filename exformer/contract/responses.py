"""Responses (v1) as pydantic models: what every answer holds, field by field.

The explain layer validates each response against these where it builds it
(`exformer.explain.responses`), so an answer that breaks the contract fails there, not in a
client. JSON arrays may hold numpy arrays in process (orjson writes them as nested lists).
"""

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, WrapValidator

from .vocabulary import Baseline, HeadAggregate, Method, Score


def _numpy_or_list(value, handler):
    """A numpy array is kept as it is (orjson writes it); anything else is validated as a list."""
    return value if isinstance(value, np.ndarray) else handler(value)


Nested = Annotated[list[Any], WrapValidator(_numpy_or_list)]


def relative_delta(convergence_delta: float, score: float, baseline_score: float) -> float | None:
    """|convergence delta| / |F(x) − F(x′)|: the share of what IG should explain that it misses;
    None when F(x) = F(x′) (nothing to explain, so no share). The one definition: results,
    metrics and the dataset command all use it."""
    explained = abs(score - baseline_score)
    return abs(convergence_delta) / explained if explained > 0 else None


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
    data: Nested = Field(description="Nested lists of float32 values, `shape` deep.")


class Float16Array(Response):
    encoding: Literal["float16-base64"]
    dtype: Literal["float16"]
    byteorder: Literal["little"]
    shape: list[int]
    data: str = Field(description="base64 of the little-endian float16 values, row-major.")


class JsonIndexArray(Response):
    encoding: Literal["json"]
    shape: list[int]
    data: Nested = Field(description="Nested lists of integers, `shape` deep.")


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

__all__ = ['Response', 'ModelDetails', 'TokenPrediction', 'Token', 'JsonArray', 'Float16Array', 'JsonIndexArray', 'Base64IndexArray', 'JsonAttention', 'Float16Attention', 'SparseRows', 'SparseAttention', 'JsonRollout', 'Float16Rollout', 'SparseRollout', 'ClassPrediction', 'NextTokenPrediction', 'Truncation', 'AttentionResponse', 'ModelDetailsResponse', 'Target', 'BaselineUsed', 'Attributions', 'Word', 'PathResponse', 'GradientsResponse', 'GenerationToken', 'TokenChoice', 'GenerationTarget', 'GenerationBaseline', 'GenerationResponse', 'ErrorResponse', 'relative_delta']
