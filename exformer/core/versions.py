"""Scorers for `evaluate` (exformer.core.evaluate): F of every row after versions of the input
with sets of units removed, as batched forwards under inference mode.

- A causal LM's continuation (`ContinuationScorer`): each version of the prompt (its ids made by
  the caller, e.g. exformer.explain.ablations.version_ids) followed by the continuation, scored
  by `ablation.score_versions` (the KV cache of the prefix the versions of a chunk share):
  one row per target token in the request's score, and one for the whole continuation
  (log p(continuation) = Σ_t log p_t; with "logit_probability", ContextCite's, its log p/(1 − p)).
- A sequence classifier (`ClassifierScorer`): each version's ids padded into a batch with an
  attention mask, run through the gradients pass's own forward (`batching.pad_batch`,
  `batching.head_logits`), F of the target class (`scores.score`).

Versions whose inputs come out the same (two sets of units that tokenize alike) run once;
`forwards` counts the inputs run. The versions run in chunks (`ablation.default_rows`
versions), the request's deadline checked before each ("evaluation versions").

A classifier's units and versions (`classifier_units`, `classifier_inputs`): tokens, words or
sentences of its text (and text pair), removed from the text and the text tokenized again
(`units.ablate_text`) or their tokens replaced by the baseline token.
"""

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..contract.errors import RequestError
from ..contract.vocabulary import TOKEN_BASELINES
from .ablation import continuation_logit_probability, default_rows, score_versions
from .baselines import baseline_token_id
from .batching import attention_for_gradients, for_each_chunk, head_logits, pad_batch
from .deadline import check as check_deadline
from .loading import LoadedModel
from .scores import score as score_of
from .tokens import Encoded, TokenRow, encode
from .units import Unit, ablate_text, removed_spans, sentence_units
from .words import word_rows

WHAT = "evaluation versions"  # how far a request stopped at its deadline got


class ContinuationScorer:
    """F [versions, n_t + 1] of a continuation after versions of its prompt: each target token's
    in `score`, then the whole continuation's. `ids_of(removed)` makes a version's prompt ids."""

    def __init__(
        self,
        loaded: LoadedModel,
        ids_of: Callable[[frozenset[int]], Sequence[int]],
        targets: list[int],
        score: str,
        rows_per_forward: int | None = None,
    ):
        self.loaded, self.ids_of, self.targets, self.score = loaded, ids_of, list(targets), score
        self.rows_per_forward = rows_per_forward
        self.forwards = 0

    def __call__(self, removed: list[frozenset[int]]) -> np.ndarray:
        prompts = [tuple(self.ids_of(r)) for r in removed]
        distinct = sorted(set(prompts))  # neighbours share long prefixes: a chunk's KV cache covers more
        self.forwards += len(distinct)
        n_t = len(self.targets)
        rows = self.rows_per_forward or default_rows(max(map(len, distinct)) + n_t, self.loaded.device)
        out = np.empty((len(distinct), n_t + 1))  # [distinct, n_t + 1]
        for first in range(0, len(distinct), rows):
            check_deadline(WHAT, first, len(distinct))
            chunk = [list(p) for p in distinct[first : first + rows]]
            scores = score_versions(self.loaded, chunk, self.targets, rows_per_forward=len(chunk))
            out[first : first + len(chunk), :n_t] = scores.of(self.score)
            out[first : first + len(chunk), n_t] = (
                continuation_logit_probability(scores.logit_probability)
                if self.score == "logit_probability"
                else scores.log_probability.sum(-1)
            )
        where = {p: k for k, p in enumerate(distinct)}
        return out[[where[p] for p in prompts]]


class ClassifierScorer:
    """F [versions, 1] of a classifier's `target` class after versions of its input;
    `inputs_of(removed)` makes a version's model kwargs (batch of one, as `tokens.encode`)."""

    def __init__(
        self,
        loaded: LoadedModel,
        inputs_of: Callable[[frozenset[int]], dict[str, torch.Tensor]],
        target: int,
        score: str,
        dtype: str = "float32",
        rows_per_forward: int | None = None,
    ):
        self.loaded, self.inputs_of, self.target, self.score, self.dtype = loaded, inputs_of, target, score, dtype
        self.rows_per_forward = rows_per_forward
        self.forwards = 0

    def __call__(self, removed: list[frozenset[int]]) -> np.ndarray:
        inputs = [self.inputs_of(r) for r in removed]
        keys = [tuple((name, tuple(value[0].tolist())) for name, value in sorted(i.items())) for i in inputs]
        first_of: dict[tuple, int] = {}
        for k, key in enumerate(keys):
            first_of.setdefault(key, k)
        distinct = sorted(first_of.values(), key=lambda k: inputs[k]["input_ids"].shape[1])  # alike lengths pad less
        self.forwards += len(distinct)
        scored: dict[tuple, float] = {}

        @torch.inference_mode()
        def run(chunk: list[int]):
            rows = [inputs[k] for k in chunk]
            embed = self.loaded.embedding
            embeddings = [embed(row["input_ids"].to(embed.weight.device))[0] for row in rows]  # [T, E] each
            kwargs, padded, spans = pad_batch(self.loaded, rows, embeddings)
            logits = head_logits(self.loaded, kwargs, padded, spans, self.dtype)  # [B, classes]
            values = score_of(self.score, logits.double(), self.target)  # [B]
            scored.update(zip((keys[k] for k in chunk), values.cpu().numpy()))

        longest = max(inputs[k]["input_ids"].shape[1] for k in distinct)
        with attention_for_gradients(self.loaded):
            for_each_chunk(distinct, self.rows_per_forward or default_rows(longest, self.loaded.device), run, what=WHAT)
        return np.array([[scored[key]] for key in keys])  # [versions, 1]


def classifier_units(loaded: LoadedModel, encoded: Encoded, text: str, text_pair: str | None, kind: str) -> list[Unit]:
    """A classifier input's units (ids as `exformer.explain.ablations.units_of`: t{i}, w{k}, s{k}),
    each with the text it lies in ("where": 0 text, 1 text pair), its span there and its tokens."""
    texts: dict = {0: text, 1: text_pair}
    spans = [None if o is None or s is None else (s, o[0], o[1]) for o, s in zip(encoded.offsets, encoded.segments)]
    if kind == "sentence":
        return sentence_units({k: t for k, t in texts.items() if t is not None}, spans)
    if kind == "word":
        rows = [
            TokenRow(
                index=i,
                text="",
                id=0,
                start=None if s is None else s[1],
                end=None if s is None else s[2],
                surface=None,
                segment=None if s is None else s[0],
                special=s is None,
            )
            for i, s in enumerate(spans)
        ]
        return [
            Unit(
                id=f"w{k}", where=w["segment"] or 0, start=w["start"], end=w["end"], text=w["text"], tokens=w["tokens"]
            )
            for k, w in enumerate(word_rows(rows, texts))
        ]
    if kind == "token":
        return [
            Unit(id=f"t{i}", where=s[0], start=s[1], end=s[2], text=(texts[s[0]] or "")[s[1] : s[2]], tokens=[i])
            for i, s in enumerate(spans)
            if s is not None
        ]
    raise RequestError("evaluate.unit", f"a classifier's units are tokens, words or sentences, not {kind!r}")


def classifier_inputs(
    loaded: LoadedModel,
    encoded: Encoded,
    text: str,
    text_pair: str | None,
    units: list[Unit],
    ablation: str = "remove",
    baseline: str | None = None,
) -> Callable[[frozenset[int]], dict]:
    """removed → the model kwargs of the input without those units: their characters taken out of
    the text (and the whitespace before them) and the texts tokenized again, or ("baseline") their
    tokens replaced by the baseline token (pad, unk, mask or period)."""
    if ablation == "baseline":
        if baseline not in TOKEN_BASELINES:
            raise RequestError(
                "baseline", f"replaces tokens by a token: one of {list(TOKEN_BASELINES)}, not {baseline!r}"
            )
        token = baseline_token_id(loaded.tokenizer, baseline)

        def replaced(removed: frozenset[int]) -> dict:
            ids = encoded.inputs["input_ids"].clone()
            positions = [i for u in removed for i in units[u]["tokens"]]
            ids[0, positions] = token
            return {**encoded.inputs, "input_ids": ids}

        return replaced

    visible = _visible_texts(encoded, text, text_pair)

    def retokenized(removed: frozenset[int]) -> dict:
        if not removed:
            return encoded.inputs
        texts = list(visible)
        for where, spans in removed_spans(units, removed).items():
            texts[where] = ablate_text(texts[where] or "", spans)
        return encode(loaded, texts[0] or "", texts[1]).inputs  # nothing left: the special tokens alone

    return retokenized


def _visible_texts(encoded: Encoded, text: str, text_pair: str | None) -> list[str | None]:
    """The texts as far as the model saw them: a truncated input's dropped tail stays out of
    every version (removing a unit must not bring unseen text in)."""
    if not encoded.truncated:
        return [text, text_pair]
    ends: dict[int, int] = {}
    for offset, segment in zip(encoded.offsets, encoded.segments):
        if offset is not None and segment is not None:
            ends[segment] = max(ends.get(segment, 0), offset[1])
    return [t if t is None else t[: ends.get(k, 0)] for k, t in enumerate((text, text_pair))]


__all__ = ["ContinuationScorer", "ClassifierScorer", "classifier_units", "classifier_inputs"]
