"""Responses (v1) as pydantic models: what every answer holds, field by field.

The explain layer validates each response against these where it builds it
(`exformer.explain.responses`), so an answer that breaks the contract fails there, not in a
client. JSON arrays may hold numpy arrays in process (orjson writes them as nested lists).
"""

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, WrapValidator

from .evaluation import Evaluation
from .vocabulary import Ablation, Attribution, Baseline, GradientAttribution, HeadAggregate, Method, Role, Score, Unit


def _numpy_or_list(value, handler):
    """A numpy array is kept as it is (orjson writes it); anything else is validated as a list."""
    return value if isinstance(value, np.ndarray) else handler(value)


Nested = Annotated[list[Any], WrapValidator(_numpy_or_list)]


def relative_delta(convergence_delta: float | None, score: float, baseline_score: float | None) -> float | None:
    """|convergence delta| / |F(x) − F(x′)|: the share of what IG should explain that it misses;
    None when F(x) = F(x′) (nothing to explain, so no share) or the method has no completeness
    (saliency, attnlrp). The one definition: results, metrics and the dataset command all use it."""
    if convergence_delta is None or baseline_score is None:
        return None
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
        None, description="Attention only: top-k tokens at this position (masked LM) or after it (causal LM)."
    )


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


_AGGREGATE = Field(
    None,
    description='Set when `heads` was asked as "mean" or "max": the head axis (size 1) holds '
    "that aggregate over the heads listed in `heads` (every head).",
)


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
        description="[..., T, k]: the column (token attended to) of each value; base64 uint16/uint32 with "
        "float16-base64."
    )
    kept: JsonArray | Float16Array = Field(description="[..., T]: Σ values of each row.")
    rest: JsonArray | Float16Array = Field(description="[..., T]: each row's sum minus `kept`, the mass not sent.")
    min_kept_fraction: float = Field(description="min over rows of kept / (kept + rest).")


class SparseAttention(SparseRows):
    layers: list[int]
    heads: list[int]
    aggregate: HeadAggregate | None = _AGGREGATE


_ROLLOUT_DOC = (
    "[layers, T, T]: R_l = Ã_l · R_(l-1), Ã_l = rows-normalised (0.5 · mean over heads of A_l + 0.5 · I), "
    "R_(-1) = I (Abnar & Zuidema 2020): how much input token j (column) reaches token i (row) after layer l."
)


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
        None,
        description="[layers, heads, tokens, tokens]: attention from each token (row) to each token (column); "
        'absent with "rollout": "only".',
    )
    rollout: JsonRollout | Float16Rollout | SparseRollout | None = Field(
        None, description=_ROLLOUT_DOC + ' Present when asked (rollout: true or "only").'
    )
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
    message: int | None = Field(None, description="With `messages`: the message (of segment 0) whose content holds it.")
    tokens: list[int] = Field(description="Indices into `tokens`.")


class TextUnit(Response):
    """A sentence, a source, a word or a token of the prompt (or a sentence of the continuation):
    what a value is summed over, or what a forward-only method leaves out."""

    id: str = Field(description='A source\'s own id; "s0", "s1" … for sentences, "w0" … words, "t<index>" tokens.')
    text: str
    segment: Literal[0, 1] = Field(description="0: the prompt, 1: the continuation.")
    message: int | None = Field(description="With `messages`: the message whose content holds it (offsets are in it).")
    start: int = Field(description="Character offset in its text: the message's content, `text`, or the continuation.")
    end: int
    tokens: list[int] = Field(description="Indices into `tokens` of the tokens whose first visible character it holds.")


class UnitAttribution(Response):
    id: str = Field(description="The unit's (source's, sentence's) id.")
    attribution: float


class MessageAttribution(Response):
    message: int | None = Field(description="Index into `messages`; null: the generation prompt the template adds.")
    role: Role
    attribution: float = Field(
        description="The sum over the message's tokens, the template's included (0 when held fixed)."
    )


class MessageUsed(Response):
    role: Role
    content: str
    tokens: list[int] = Field(
        description="Indices into `tokens`: the message's own tokens, then the template's of its turn."
    )


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
        None, description='n_steps "auto": the relative convergence delta asked for; null for a fixed n_steps.'
    )
    converged: bool | None = Field(
        None,
        description='n_steps "auto": whether |convergence_delta| <= tolerance x |F(x) - F(x\')| (and the '
        "local error estimate) was reached within max_n_steps, for every target of a "
        "continuation; null for a fixed n_steps.",
    )


class GradientsResponse(PathResponse):
    """The JSON summary (`format: json`, and the `summary` entry of an npz)."""

    attribution: GradientAttribution = Field("integrated_gradients", description="The method that answered.")
    tokens: list[Token]
    prediction: ClassPrediction | NextTokenPrediction
    target: Target
    baseline: BaselineUsed | None = Field(description="null for saliency and attnlrp, which start from no baseline.")
    convergence_delta: float | None = Field(
        description="Σ attributions − (F(x) − F(x')): the quadrature's error "
        "(null for saliency, which has no completeness)."
    )
    attributions: Attributions | None = None
    path_scores: list[float] | None = Field(None, description="F at each path point.")
    gradient_norms: list[float] | None = Field(None, description="‖∂F/∂x‖ at each path point.")
    intermediate_gradients: JsonArray | None = Field(
        None, description="[n_steps, tokens, hidden], when asked in `return`."
    )
    words: list[Word] | None = Field(None, description='`aggregate: "word"`: the words of the text.')
    evaluation: Evaluation | None = Field(None, description="`evaluate`: the explanation's faithfulness, measured.")
    word_attributions: Attributions | None = Field(
        None, description='`aggregate: "word"`: per word, the sum over its tokens.'
    )


class GenerationToken(Token):
    """A prompt token, or (`target: true`) a token of the continuation; a target token's start/end
    are offsets in the continuation and its segment is 1."""

    target: bool
    message: int | None = Field(
        None,
        description="With `messages`: the message it belongs to (null: the generation "
        "prompt); start/end are offsets in that message's content.",
    )
    role: Role | None = Field(None, description="With `messages`: its message's role.")
    template: bool | None = Field(
        None,
        description="With `messages`: added by the chat template (role markers, "
        "separators); held fixed along the path like special tokens.",
    )


class TokenChoice(Response):
    id: int
    token: str = Field(description="The tokenizer's token string.")
    text: str = Field(description="The token decoded.")
    probability: float = Field(description="p(token | prefix) at the input.")


class TargetToken(Response):
    """One target token of a continuation: what the model made of its prefix (the whole prompt)."""

    position: int = Field(description="Index into `tokens`.")
    id: int
    token: str
    text: str
    probability: float = Field(description="p(y_t | prompt, y_<t) at the input.")
    entropy: float = Field(description="Entropy of that next-token distribution, in nats.")
    alternatives: list[TokenChoice] = Field(
        description="The top-k next tokens at the input (the archive's default_top_k)."
    )


class GenerationTarget(TargetToken):
    """One target token: what the model made of its prefix, and the prefix's attributions."""

    foil: TokenChoice | None
    score: float = Field(description="F_t(x): the score attributed.")
    baseline_score: float | None = Field(description="F_t(x') (null for saliency and attnlrp: no baseline).")
    convergence_delta: float | None = Field(description="Σ attributions − (F_t(x) − F_t(x')) (null for saliency).")
    attributions: Attributions | None = Field(
        None, description="One value per preceding token: len(prompt) + t values for the t-th target."
    )
    word_attributions: Attributions | None = Field(
        None,
        description='`aggregate: "word"`: per word that the row covers (a word partly inside sums its included '
        "tokens).",
    )
    sentence_attributions: list[UnitAttribution] | None = Field(
        None, description='`aggregate: "sentence"`: per sentence the row covers, the sum over its tokens.'
    )
    source_attributions: list[UnitAttribution] | None = Field(
        None, description="With `sources`: per source, the sum over its tokens."
    )
    message_attributions: list[MessageAttribution] | None = Field(
        None, description="With `messages`: per message, the sum over its tokens."
    )
    relative_delta: float | None = Field(
        description="|convergence_delta| / |score − baseline_score|: the share of the score change the row misses "
        "(null when the two scores are equal)."
    )
    within_tolerance: bool | None = Field(
        description="relative_delta <= tolerance: whether the row can be read as complete (null for saliency)."
    )
    path_scores: list[float] | None = Field(None, description="F_t at each path point.")


class GenerationBaseline(Response):
    name: Baseline
    specials: Literal["keep", "replace"]
    continuation: Literal["replace", "keep"] = Field(
        description="Whether earlier target tokens start from the baseline."
    )
    seed: int | None


class ContinuationAttributions(Response):
    """The whole continuation's: F = Σ_t F_t, so each value is the sum of the rows' values."""

    attributions: Attributions = Field(
        description="Per token of prompt + continuation (a target's row is 0 past its prefix)."
    )
    sentences: list[UnitAttribution] | None = None
    sources: list[UnitAttribution] | None = None
    messages: list[MessageAttribution] | None = None
    convergence_delta: float | None = Field(
        None,
        description='`rows: "whole"`: Σ attributions − (Σ_t F_t(x) − Σ_t F_t(x\')) (null without completeness, '
        'and with rows "each", where each row has its own).',
    )
    relative_delta: float | None = Field(None, description='`rows: "whole"`: |convergence_delta| / |the change|.')
    within_tolerance: bool | None = Field(None, description='`rows: "whole"`: relative_delta <= tolerance.')


class GenerationResponse(PathResponse):
    """The JSON summary of a continuation/generate request: one attribution row per target token."""

    attribution: GradientAttribution = Field("integrated_gradients", description="The method that answered.")
    messages: list[MessageUsed] | None = Field(None, description="With `messages`: the conversation and its tokens.")
    sentences: list[TextUnit] | None = Field(
        None, description="`aggregate: \"sentence\"`: the prompt's and the continuation's sentences."
    )
    sources: list[TextUnit] | None = Field(None, description="With `sources`: each source where it was found.")
    continuation_attributions: ContinuationAttributions | None = Field(
        None, description="The whole continuation's attributions (when attributions are returned)."
    )
    within_tolerance: bool | None = Field(description="Every row within the tolerance (null for saliency).")
    tokens: list[GenerationToken]
    continuation: str = Field(description="The continuation explained (given, or generated).")
    generated: bool
    targets: list[GenerationTarget]
    contrastive: bool = Field(description="Whether F is a difference against foils.")
    baseline: GenerationBaseline | None = Field(description="null for saliency and attnlrp: no baseline.")
    words: list[Word] | None = Field(
        None, description='`aggregate: "word"`: the words of the prompt, then of the continuation.'
    )
    evaluation: Evaluation | None = Field(None, description="`evaluate`: the explanation's faithfulness, measured.")
    intermediate_gradients: JsonArray | None = Field(
        None, description="[targets, n_steps, tokens, hidden], when asked."
    )


class AblationTarget(TargetToken):
    """One target token: its score after the whole prompt, and each unit's attribution."""

    score: float = Field(description="F_t after the whole prompt (in `score`).")
    attributions: list[UnitAttribution] = Field(
        description="occlusion: F_t(prompt) − F_t(prompt without the unit). contextcite: the surrogate's weight "
        "(the change of log p/(1−p) when the unit is kept)."
    )


class SurrogateFit(Response):
    r2: float | None = Field(description="R² of the surrogate's predictions on the held-out masks.")
    spearman: float | None = Field(
        description="Spearman's ρ between predicted and actual outputs on the held-out "
        "masks (ContextCite's LDS); null when undefined."
    )
    mean_absolute_error: float | None


class Surrogate(Response):
    """contextcite: how the linear surrogate was made, and how well it predicts masks it was not fit on."""

    n_ablations: int = Field(description="Masks the surrogate was fit on.")
    n_holdout: int = Field(description="Further masks it was tested on.")
    keep_probability: float
    seed: int = Field(description="Mask k is numpy.random.RandomState(seed + k).choice([False, True], p=[1-p, p]).")
    lasso_alpha: float
    intercept: float = Field(description="The whole answer's predicted output with every unit left out.")
    fit: SurrogateFit = Field(description="Of the whole answer's surrogate on the held-out masks.")
    n_distinct_prompts: int = Field(description="Different prompts among all masks (each ran once).")


class AblationResponse(Truncation):
    """The answer of a forward-only method (occlusion, contextcite): one value per unit, per target
    token and for the whole continuation."""

    model: ModelDetails
    attribution: Literal["occlusion", "contextcite"]
    unit: Unit
    ablation: Ablation = Field(
        description='"remove": the unit\'s text taken out (and the whitespace before it); '
        '"baseline": its tokens replaced by the baseline token.'
    )
    baseline: Baseline | None = Field(description='ablation "baseline": the token that replaced them.')
    score: Literal["probability", "logit", "log_probability", "logit_probability"] = Field(
        description="F_t: occlusion uses the request's score; contextcite log p/(1-p) (ContextCite's)."
    )
    tokens: list[GenerationToken]
    messages: list[MessageUsed] | None = None
    continuation: str
    generated: bool
    units: list[TextUnit] = Field(
        description="What was left out, one at a time (occlusion) or at random (contextcite)."
    )
    targets: list[AblationTarget]
    continuation_attributions: list[UnitAttribution] = Field(
        description="The whole answer: occlusion: the change of log p(continuation); contextcite: the surrogate of "
        "the continuation's log p/(1-p)."
    )
    surrogate: Surrogate | None = Field(None, description="contextcite only.")
    forwards: int = Field(description="Prompts the model ran (distinct versions, the whole prompt included).")
    evaluation: Evaluation | None = Field(None, description="`evaluate`: the explanation's faithfulness, measured.")


class CostEstimate(Response):
    """`dry_run: true`: what the request would run and cost on this worker, without running it."""

    dry_run: Literal[True] = True
    attribution: Attribution
    n_tokens_prompt: int
    n_tokens_continuation: int = Field(description="The continuation's tokens (generate: max_new_tokens, at most).")
    forwards: int = Field(description="Sequences run forward (path points, or versions of the prompt).")
    backwards: int = Field(description="Backward passes (one per target per path point; 0 for forward-only methods).")
    positions: int = Field(description="Token positions computed in all forwards.")
    estimated_seconds: float = Field(description="From this worker's measured speed (see `measured_from`).")
    estimated_peak_bytes: int = Field(description="Parameters + activations kept for the backward + gradients held.")
    measured_from: str = Field(description="What the speed estimate rests on.")
    max_estimated_seconds: float = Field(description="The archive's limit (a request estimated over it is refused).")
    within_limits: bool = Field(
        description="Whether it would run: refused only when over the limit even at the "
        "fastest this worker has run requests of its kind."
    )
    upper_bound: bool = Field(
        description='n_steps "auto", generate, occlusion or contextcite: the figures are for the '
        "most it may run (forward-only: every ablated prompt as long as the whole, "
        "none alike)."
    )
    cheaper: list[str] = Field(description="Cheaper requests, with their estimated seconds.")


class ErrorResponse(Response):
    """Every 4xx/5xx we answer. `field` names what was wrong (4xx)."""

    code: int
    type: str
    message: str
    field: str | None = None
    estimate: CostEstimate | None = Field(None, description="A request refused for its cost: what it would have cost.")
    seconds: float | None = Field(None, description="Timeout (503): the seconds the request ran before it stopped.")
    deadline_seconds: float | None = Field(
        None, description="Timeout (503): the worker's deadline (the archive's deadline_seconds)."
    )
    progress: str | None = Field(None, description="Timeout (503): how far the request got.")
    cheaper: list[str] | None = Field(None, description="Timeout (503): requests that would take less.")


__all__ = [
    "Response",
    "ModelDetails",
    "TokenPrediction",
    "Token",
    "JsonArray",
    "Float16Array",
    "JsonIndexArray",
    "Base64IndexArray",
    "JsonAttention",
    "Float16Attention",
    "SparseRows",
    "SparseAttention",
    "JsonRollout",
    "Float16Rollout",
    "SparseRollout",
    "ClassPrediction",
    "NextTokenPrediction",
    "Truncation",
    "AttentionResponse",
    "ModelDetailsResponse",
    "Target",
    "BaselineUsed",
    "Attributions",
    "Word",
    "PathResponse",
    "GradientsResponse",
    "GenerationToken",
    "TokenChoice",
    "TargetToken",
    "GenerationTarget",
    "GenerationBaseline",
    "GenerationResponse",
    "ErrorResponse",
    "TextUnit",
    "UnitAttribution",
    "MessageAttribution",
    "MessageUsed",
    "ContinuationAttributions",
    "AblationTarget",
    "SurrogateFit",
    "Surrogate",
    "AblationResponse",
    "CostEstimate",
    "relative_delta",
]
