"""Requests (v1) as pydantic models, with every rule that needs no model.

Strict: a bool is not an int, a float is not an int; unknown fields are refused with a
did-you-mean hint; a null where the field has no "null" meaning is refused, naming the field.
Ranges that depend on the loaded model (layers, heads, the mask token, targets, baselines,
the archive's limits) are checked next to it, in `exformer.explain.checks`.

>>> AttentionRequest.model_validate({"text": "The cat sat.", "layers": [0]}).layers
[0]
"""

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .errors import RequestError, json_excerpt
from .evaluation import Evaluate
from .vocabulary import (
    DEFAULT_ABLATIONS,
    DEFAULT_HOLDOUT,
    DEFAULT_KEEP_PROBABILITY,
    DEFAULT_RETURNS,
    DEFAULT_TOLERANCE,
    FORWARD_ATTRIBUTIONS,
    HEAD_AGGREGATES,
    KRONROD_POINTS,
    MAX_INDICES,
    MAX_MESSAGES,
    MAX_SOURCES,
    METHOD_OPTIONS,
    METHOD_SPECIFIC,
    NESTED_METHODS,
    Ablation,
    Aggregate,
    Attribution,
    Baseline,
    Encoding,
    Format,
    Index,
    Method,
    Returned,
    Role,
    Score,
    Unit,
)


def _fail(message: str, kind: str = "exformer") -> PydanticCustomError:
    """A validation error with our own message; kind "too_large" becomes a 413."""
    return PydanticCustomError(kind, message)


def _check_indices(value: Any, what: str, words: tuple[str, ...] = ("all",)) -> Any:
    """One of `words` ('all'), or a non-empty list of distinct indices from 0 (the model bounds
    them: exformer.explain.checks)."""
    if value in words:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise _fail(
            f"must be {' or '.join(json_excerpt(w) for w in words)} or a list of integers, got {json_excerpt(value)}"
        )
    if not value:
        raise _fail('must not be empty (use "all")')
    _at_most(value, MAX_INDICES)
    return _distinct_from_zero(value, f"{what} are numbered from 0")


def _at_most(items: list, limit: int) -> None:
    """A list longer than one of the contract's fixed limits: refused before anything else is read."""
    if len(items) > limit:
        raise _fail(f"has {len(items)} entries; at most {limit} (a fixed limit of the contract)")


def _distinct_from_zero(value: list[int], numbering: str) -> list[int]:
    bad = [v for v in value if v < 0]
    if bad:
        raise _fail(f"{bad} out of range: {numbering}")
    if len(set(value)) != len(value):
        raise _fail("has duplicates")
    return value


def _given_with_auto(value: Any, info: ValidationInfo, hint: str) -> bool:
    """Whether an n_steps "auto" option was given; refused (rather than dropped) beside a fixed n_steps."""
    if value is None or info.data.get("attribution", "integrated_gradients") != "integrated_gradients":
        return False
    if info.data.get("n_steps") != "auto":
        raise _fail(f'applies only to "n_steps": "auto" ({hint})')
    return True


class Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class TextRequest(Request):
    """What both explanations share: a text (and maybe a pair), or nothing for the model's details."""

    @field_validator("text", "text_pair", check_fields=False)
    @classmethod
    def _text(cls, value):
        if value is not None and not value.strip():
            raise _fail("must not be empty")
        return value

    @model_validator(mode="after")
    def _text_unless_details(self):
        """An empty body asks for the model's details; anything else needs a text (or messages)."""
        if self.details_only and self.model_fields_set - {"text"}:
            raise RequestError("text", "is required (a non-empty string)")
        return self

    @property
    def details_only(self) -> bool:
        """Whether this is the empty request, which asks for the model's details."""
        return getattr(self, "text", None) is None and getattr(self, "messages", None) is None


# --- requests -----------------------------------------------------------------------------------


class AttentionRequest(TextRequest):
    """`POST /predictions/<model>-attention`. An empty body asks for the model's details only."""

    text: str = Field(None, description="The text to explain; omit (with every other field) for the model's details.")
    text_pair: str | None = Field(None, description="A second segment (sentence pairs).")
    layers: Literal["all"] | list[Index] = Field("all", description='Layers to return: "all" or indices.')
    heads: Literal["all", "mean", "max"] | list[Index] = Field(
        "all",
        description='Heads to return: "all", indices, or "mean" / "max": one map per layer, that aggregate '
        "of every head (the head axis has size 1); a head-count times smaller, for long prompts.",
    )
    mask: list[Index] | None = Field(None, description="Token indices to replace by the mask token before the forward.")
    top_k: int | None = Field(
        None, ge=1, description="Predictions per token (masked/causal LMs); default: the archive's (5)."
    )
    encoding: Encoding = Field(
        "json",
        description="json: exact float32 numbers; float16-base64: 4.4-4.9x smaller (measured at 16 and 128 tokens).",
    )
    top_k_per_row: int | None = Field(
        None,
        ge=1,
        description="Sparse answer: of every row of every T×T matrix (attention, rollout) only the k "
        "largest values and their columns, with each row's kept and remaining mass; values in "
        "`encoding`. For 1-2k-token prompts.",
    )
    rollout: bool | Literal["only"] = Field(
        False,
        description='true: add `rollout` (Abnar & Zuidema 2020) for the requested layers; "only": rollout '
        "without `attention`.",
    )

    @field_validator("layers", "heads", mode="before")
    @classmethod
    def _indices(cls, value, info: ValidationInfo):
        words = ("all", *HEAD_AGGREGATES) if info.field_name == "heads" else ("all",)
        return _check_indices(value, info.field_name or "indices", words)

    @model_validator(mode="after")
    def _rollout_only_takes_no_heads(self):
        if self.rollout == "only" and "heads" in self.model_fields_set:
            raise RequestError(
                "heads",
                'has no effect with "rollout": "only" (rollout averages every head); '
                "leave it out, or ask rollout: true for both",
            )
        return self

    @field_validator("mask", mode="before")
    @classmethod
    def _mask(cls, value):
        if value is None:
            return value
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise _fail(f"must be a list of token indices, got {json_excerpt(value)}")
        _at_most(value, MAX_INDICES)
        return _distinct_from_zero(value, "token indices count from 0")


class Generate(Request):
    """`generate`: greedy decoding of the continuation to explain."""

    max_new_tokens: int = Field(ge=1, description="Tokens to generate (at most the archive's max_new_tokens).")


Foil = Index | str | list[Index | str]


class Message(Request):
    """One turn of a conversation, rendered by the tokenizer's chat template."""

    role: Role
    content: str = Field(description="What was written; attributions go to its tokens.")

    @field_validator("content")
    @classmethod
    def _content(cls, value):
        if not value.strip():
            raise _fail("must not be empty")
        return value


class Source(Request):
    """A named span of the prompt, e.g. one retrieved document: characters [start, end) of message
    `message` (or of `text`), or a `text` found exactly once in the prompt."""

    id: str = Field(min_length=1, description="The name answers carry for it (a document id, a URL).")
    message: Index | None = Field(None, description="Index into `messages` (with start/end); leave out with `text`.")
    start: Index | None = Field(None, description="First character, in its message's content (or in `text`).")
    end: Index | None = Field(None, description="One past the last character.")
    text: str | None = Field(
        None, min_length=1, description="Instead of start/end: characters found exactly once in the prompt."
    )

    @model_validator(mode="after")
    def _span_or_text(self):
        span = (self.start, self.end)
        if self.text is not None:
            if span != (None, None) or self.message is not None:
                raise _fail('give "text", or "start" and "end" (and "message"), not both')
        elif self.start is None or self.end is None:
            raise _fail('needs "start" and "end" (characters [start, end)), or "text"')
        elif self.end <= self.start:
            raise _fail(f"end ({self.end}) must be after start ({self.start})")
        return self


class GradientsRequest(TextRequest):
    """`POST /predictions/<model>-gradients` (and `/explanations/<model>-gradients`)."""

    text: str = Field(
        None,
        validation_alias=AliasChoices("text", "sequence"),
        description='The text to explain ("sequence" is accepted, the old server\'s name); '
        "omit (with every other field) for the model's details.",
    )
    messages: list[Message] = Field(
        None,
        max_length=MAX_MESSAGES,
        description="Chat models: the conversation instead of `text`, rendered by the tokenizer's chat "
        "template with the generation prompt; needs continuation (the assistant's reply) or generate.",
    )
    sources: list[Source] = Field(
        None,
        max_length=MAX_SOURCES,
        description='Causal LM: named spans of the prompt ({"id", "message", "start", "end"}, or {"id", "text"} '
        "found exactly once), e.g. the retrieved documents of a RAG prompt; answers sum per source.",
    )
    attribution: Attribution = Field(
        "integrated_gradients",
        description='The method: "integrated_gradients"; "gradient_x_input" (the embedding '
        "gradient at the input times input minus baseline: one forward and one "
        'backward per target); "saliency" (that gradient\'s norm per token); "attnlrp" (AttnLRP: '
        "relevance from one forward and one backward per target, not conservative; LRP is patented, "
        "free for personal and scientific use); "
        '"occlusion" (leave one unit out, one forward each) or "contextcite" '
        "(random ablations and a Lasso surrogate): forward-only, causal LM "
        "continuations only. Which other fields each reads: docs/api/methods.md.",
    )
    unit: Unit = Field(
        None,
        description="occlusion/contextcite: what is left out: token, word, sentence or source (default: "
        '"source" with sources, else "sentence").',
    )
    ablation: Ablation = Field(
        "remove",
        description='occlusion/contextcite: "remove" the unit from the text (re-tokenized, as ContextCite) '
        'or replace its tokens by the "baseline" token.',
    )
    n_ablations: int = Field(
        None,
        ge=2,
        description=f"contextcite: random masks the surrogate is fit on (default {DEFAULT_ABLATIONS}; "
        "with n_holdout at most the archive's max_ablations).",
    )
    keep_probability: float = Field(
        None,
        description=f"contextcite: chance that a unit is kept in a mask, 0 < p < 1 "
        f"(default {DEFAULT_KEEP_PROBABILITY}).",
    )
    n_holdout: int = Field(
        None,
        ge=0,
        description=f"contextcite: further masks the surrogate's fit is measured on (default {DEFAULT_HOLDOUT}; "
        "with n_ablations at most the archive's max_ablations).",
    )
    evaluate: Evaluate = Field(
        None,
        description="Measure the answer's faithfulness on the input itself: deletion and insertion curves "
        "over its units in the explanation's order, their areas (AOPC), ERASER's comprehensiveness "
        "and sufficiency, and the same against random orders (the answer's `evaluation`); "
        "docs/api/evaluate.md.",
    )
    dry_run: bool = Field(
        False,
        description="Answer with what the request would cost (forwards, backwards, tokens, "
        "estimated seconds and peak memory) instead of running it.",
    )
    text_pair: str | None = Field(None, description="A second segment (sentence pairs).")
    target: Index | str | None = Field(
        None,
        description="Classifier: class index or label. Causal LM: next token (text of one token, or id). "
        "Default: the model's own prediction.",
    )
    baseline: Baseline = Field(None, description='Where the path starts; default "pad" ("zero" without a pad token).')
    baseline_specials: Literal["keep", "replace"] = Field(
        "keep",
        description='"keep" special tokens in the baseline (only content is explained); "replace": the old server.',
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the rand-norm / rand-unif baselines.")
    method: Method = Field(
        "gausslegendre",
        description='captum\'s approximation method; with n_steps "auto": '
        '"fejer" (the default there) or "gausskronrod" (the '
        "default with continuation/generate).",
    )
    n_steps: int | Literal["auto"] = Field(
        50,
        description='Points along the path (at most the archive\'s max_n_steps), or "auto": refine until '
        "|convergence_delta| <= tolerance x |F(x) - F(x')|.",
    )
    tolerance: float | None = Field(
        None,
        description=f'The relative convergence delta to reach with n_steps "auto"; with a continuation also '
        f"what a row must be within to be marked complete (`within_tolerance`); 0 < tolerance < 1 "
        f"(default {DEFAULT_TOLERANCE}).",
    )
    max_n_steps: int | None = Field(
        None,
        description='n_steps "auto": the most gradients to compute (default and ceiling: the archive\'s max_n_steps).',
    )
    score: Score = Field(
        "probability", description="F: softmax probability of the target, or its raw logit (the old server)."
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        None,
        description="What the gradients are computed in (default: the archive's dtype setting, float32 unless it "
        'says bfloat16); "bfloat16" where the worker computes bf16 natively, faster and less '
        "faithful (the answer's convergence delta shows how much).",
    )
    returns: list[Returned] | None = Field(
        None, alias="return", description="What to return; default by format (json: the summary)."
    )
    format: Format = Field("json", description="json summary, npz (numpy), or torch-gzip (the old server's file).")
    continuation: str = Field(
        None,
        description="Causal LM: the text that follows `text` (tokenized without special tokens); "
        "every one of its tokens is a target, attributed to the prompt and the earlier target tokens.",
    )
    generate: Generate = Field(
        None, description="Causal LM: generate the continuation greedily (deterministic) instead of giving it."
    )
    foil: Foil = Field(
        None,
        description="Contrastive targets (with continuation/generate): one token (text or id) for every "
        "target, or one per target token; F = p(target) - p(foil) (logit difference with "
        'score "logit" or "log_probability").',
    )
    continuation_baseline: Literal["keep", "replace"] = Field(
        "keep",
        description='With continuation/generate: "keep": earlier target tokens stay themselves along the path '
        "(captum's LLMGradientAttribution), so each row explains its token by the prompt, as "
        'occlusion and ContextCite do; "replace": they start from the baseline like the prompt '
        "(docs/api/chat.md: why keep is the default).",
    )
    rows: Literal["each", "whole"] = Field(
        "each",
        description='With continuation/generate, gradient methods: "each": a row per target token, and the whole '
        'answer as their sum; "whole": the whole answer alone, F = the sum of the targets\' scores (with score '
        '"log_probability": log p of the continuation), one backward per path point instead of one per target.',
    )
    aggregate: Aggregate = Field(
        "token",
        description='"word" / "sentence": also sum the attributions over each word\'s or sentence\'s tokens '
        "(from the tokenizer's offsets; the rules: docs/api/generations.md); the token values stay.",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_text(cls, body):
        if isinstance(body, dict) and "text" in body and "sequence" in body:
            raise RequestError("sequence", 'is the old name of "text"; give one of them, not both')
        if isinstance(body, dict) and "messages" in body and ("text" in body or "sequence" in body):
            raise RequestError("messages", 'give "text" or "messages", not both')
        return body

    @model_validator(mode="after")
    def _conversation(self):
        """messages/sources/attribution: what each needs and what it leaves no room for."""
        if self.rows == "whole" and not self.generation:
            raise RequestError("rows", 'needs "continuation" or "generate": a single target is one row already')
        if self.messages is not None:
            if not self.messages:
                raise RequestError("messages", "must not be empty")
            if not self.generation:
                raise RequestError("messages", 'needs "continuation" (the assistant\'s reply) or "generate"')
            if self.text_pair is not None:
                raise RequestError("text_pair", 'a conversation has no text pair; leave "text_pair" out')
        if self.sources is not None:
            self._check_sources()
        self._method_options()
        if self.attribution in FORWARD_ATTRIBUTIONS:
            self._check_forward()
        if self.evaluate is not None:
            self._check_evaluate()
        return self

    def _check_evaluate(self):
        unit = self.evaluate.unit
        if self.foil is not None:
            raise RequestError("evaluate", "measures the score of the targets themselves; leave out foil (or evaluate)")
        if self.attribution in FORWARD_ATTRIBUTIONS and unit is not None and unit != self.units:
            raise RequestError(
                "evaluate.unit",
                f'{self.attribution} attributes to its unit "{self.units}": evaluate on '
                'it (leave evaluate.unit out) or choose that unit with "unit"',
            )
        if unit == "source" and self.sources is None:
            raise RequestError("evaluate.unit", '"source" needs "sources"')
        if self.generation is False and unit == "source":
            raise RequestError("evaluate.unit", "a classifier's units are tokens, words or sentences")

    def _method_options(self):
        """A field that only some methods read (METHOD_OPTIONS), given to another, is refused naming it."""
        for name in sorted(self.model_fields_set & METHOD_SPECIFIC):
            shown = type(self).model_fields[name].alias or name
            if name not in METHOD_OPTIONS[self.attribution]:
                readers = [m for m, fields in METHOD_OPTIONS.items() if name in fields]
                if name == "score" and self.attribution == "contextcite":
                    raise RequestError(
                        "score",
                        "contextcite fits the answer's log-probability logit (log p/(1-p), "
                        "as ContextCite); leave score out",
                    )
                said = " or ".join(f'"{m}"' for m in readers)
                raise RequestError(shown, f'applies to "attribution": {said}, not "{self.attribution}"; leave it out')

    def _check_sources(self):
        if not self.sources:
            raise RequestError("sources", "must not be empty (leave it out)")
        if not self.generation:
            raise RequestError("sources", 'needs "continuation" or "generate" (the answer they are sources of)')
        ids = [s.id for s in self.sources]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise RequestError("sources", f"ids must be distinct; {twice} appear more than once")
        for k, source in enumerate(self.sources):
            if source.text is None:
                if self.messages is not None and source.message is None:
                    raise RequestError(
                        f"sources[{k}]", '"message" is required with "messages" (which message the span is in)'
                    )
                if self.messages is None and source.message is not None:
                    raise RequestError(
                        f"sources[{k}]", '"message" needs "messages"; with "text" give start and end only'
                    )
                if source.message is not None and source.message >= len(self.messages):
                    raise RequestError(
                        f"sources[{k}]",
                        f"message {source.message} out of range: there are {len(self.messages)} messages",
                    )

    def _check_forward(self):
        if not self.generation:
            raise RequestError(
                "attribution", f'{self.attribution} explains a continuation: give "continuation" or "generate"'
            )
        if self.unit == "source" and self.sources is None:
            raise RequestError("unit", '"source" needs "sources"')
        if self.aggregate != "token":
            raise RequestError(
                "aggregate", f'sums integrated gradients; with {self.attribution} choose what is left out with "unit"'
            )
        if self.keep_probability is not None and not 0 < self.keep_probability < 1:
            raise RequestError("keep_probability", f"must be between 0 and 1 (exclusive), got {self.keep_probability}")

    @property
    def units(self) -> str:
        """What a forward-only method leaves out: `unit`, or its default."""
        return self.unit or ("source" if self.sources is not None else "sentence")

    @property
    def prompt_texts(self) -> list[str]:
        """The texts a source or sentence lies in: `text`, or each message's content."""
        return [self.text] if self.messages is None else [m.content for m in self.messages]

    @model_validator(mode="after")
    def _generation(self):
        """continuation/generate/foil: one of the two, no next-token `target` (causal LMs only:
        exformer.explain.checks)."""
        if self.continuation is not None and self.generate is not None:
            raise RequestError("generate", 'give "continuation" or "generate", not both')
        if self.generation:
            if self.target is not None:
                raise RequestError(
                    "target",
                    'with "continuation"/"generate" every target token is a target; '
                    'leave "target" out (use "foil" for a contrast)',
                )
            if self.text_pair is not None:
                raise RequestError("text_pair", 'a continuation follows one text; leave "text_pair" out')
        elif self.tolerance is not None and self.n_steps != "auto":
            raise RequestError(
                "tolerance",
                'applies to "n_steps": "auto" (or to a continuation\'s rows); a fixed n_steps has no tolerance',
            )
        elif self.aggregate == "sentence":
            raise RequestError("aggregate", '"sentence" sums a continuation\'s rows: give "continuation" or "generate"')
        elif self.foil is not None:
            raise RequestError("foil", 'needs "continuation" or "generate" (the targets to contrast)')
        elif self.dry_run:
            raise RequestError(
                "dry_run",
                'estimates continuation requests ("continuation" or "generate"); one target '
                "costs n_steps forwards and backwards of the text",
            )
        if self.continuation is not None and not self.continuation:
            raise RequestError("continuation", "must not be empty")
        if isinstance(self.foil, list) and not self.foil:
            raise RequestError("foil", "must not be an empty list")
        return self

    @property
    def generation(self) -> bool:
        """Whether this request explains a continuation (several targets) rather than one score."""
        return self.continuation is not None or self.generate is not None

    @field_validator("foil", mode="before")
    @classmethod
    def _foil_count(cls, value):
        if isinstance(value, list):
            _at_most(value, MAX_INDICES)
        return value

    @field_validator("returns", mode="before")
    @classmethod
    def _one_return(cls, value):
        return [value] if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _auto_defaults(cls, body):
        """n_steps "auto" without a method runs a nested one, with the default tolerance: Fejér for
        one target; Gauss–Kronrod for a continuation, whose later rows have narrow spikes that
        only local refinement reaches (SmolLM2 " Paris, the": converged at 915 points where Fejér
        had not at 2047; docs/api/generations.md)."""
        integrated = (
            isinstance(body, dict) and body.get("attribution", "integrated_gradients") == "integrated_gradients"
        )
        if integrated and body.get("n_steps") == "auto":
            several = body.get("continuation") is not None or body.get("generate") is not None
            body = {"method": "gausskronrod" if several else NESTED_METHODS[0], "tolerance": DEFAULT_TOLERANCE, **body}
        return body

    @field_validator("n_steps", mode="before")
    @classmethod
    def _n_steps_type(cls, value):
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise _fail(f'must be an integer or "auto", got {json_excerpt(value)}')

    @field_validator("n_steps")
    @classmethod
    def _n_steps(cls, value, info: ValidationInfo):
        if info.data.get("attribution", "integrated_gradients") != "integrated_gradients":
            return value  # another method's request: refused as not its field (_method_options)
        method = info.data.get("method", "gausslegendre")
        if value == "auto":
            if method not in NESTED_METHODS:
                raise RequestError(
                    "method",
                    f"{method} is not nested (its points cannot be reused when refined); "
                    f'n_steps "auto" runs {" or ".join(NESTED_METHODS)}',
                )
            return value
        if method in NESTED_METHODS:
            raise _fail(f'{method} is adaptive: use "n_steps": "auto", or a fixed method with {value} steps')
        if value < 1:
            raise _fail(f"must be at least 1, got {value}")
        if value < 2 and method != "gausslegendre":
            raise _fail(f"{method} needs at least 2 steps, got {value}")
        return value

    @field_validator("tolerance", mode="before")
    @classmethod
    def _tolerance(cls, value, info: ValidationInfo):
        """With "auto" the delta to reach; with a fixed n_steps (continuations) the delta a row
        must be within to be marked complete (`within_tolerance`)."""
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise _fail(f"must be a number between 0 and 1 (exclusive), e.g. 0.01 for 1%, got {json_excerpt(value)}")
        return float(value)

    @field_validator("max_n_steps", mode="before")
    @classmethod
    def _max_n_steps(cls, value, info: ValidationInfo):
        if not _given_with_auto(value, info, "give the number of steps in n_steps"):
            return value
        if isinstance(value, bool) or not isinstance(value, int) or value < KRONROD_POINTS:
            raise _fail(
                f"must be an integer of at least {KRONROD_POINTS} (one Gauss-Kronrod rule), got {json_excerpt(value)}"
            )
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
