"""Continuation requests → responses: a causal LM's continuation (given, or generated
greedily) attributed row by row (exformer.core.continuation), each target described (its
probability, entropy, alternatives, foil) and its row summed per word when asked.

>>> from exformer import load_model, explain_gradients
>>> lm = load_model("build/models/smollm2")
>>> r = explain_gradients(lm, {"text": "The capital of France is", "continuation": " Paris"}, n_steps=32)
>>> [len(t["attributions"]["raw"]) for t in r["targets"]]
[5]
"""

import time

import torch

from ..contract.errors import RequestError
from ..contract.requests import GradientsRequest
from ..contract.responses import relative_delta
from ..contract.vocabulary import DEFAULT_TOLERANCE
from ..core.baselines import baseline_embeddings
from ..core.continuation import (
    ContinuationGradients,
    ContinuationPath,
    continuation_endpoint_logits,
    continuation_scores,
    greedy,
    integrate_targets,
    refine_targets,
)
from ..core.prompts import Prompt, prompt_of
from ..core.units import sentence_units, source_units
from ..core.words import word_rows, word_sums
from . import ablations, cost
from .rows import (
    choice,
    continuation_answer,
    described_targets,
    message_values,
    text_units,
    token_rows,
    token_spans,
    unit_values,
)
from .checks import resolve_target
from .encoding import check_gradients_size
from .responses import GradientsAnswer, attribution_values


def explain(loaded, request: GradientsRequest) -> GradientsAnswer | dict:
    """One continuation/generate request, answered (RequestError naming the field if it cannot
    be): integrated gradients (a GradientsAnswer), a forward-only method's answer or a dry
    run's estimate (checked dicts)."""
    prompt = prompt_of(loaded, request)
    if request.sources is not None:
        source_units(request.sources, prompt.texts, prompt.spans)  # a source not found: refused before any cost
    if request.dry_run:
        return cost.dry_run(loaded, request, prompt)
    if request.generate is not None:
        limit = loaded.max_tokens - len(prompt)
        if limit < 1:
            raise RequestError("text", f"has {len(prompt)} tokens, the model's max_tokens ({loaded.max_tokens}): "
                                       "no room to generate", code=413)
        cost.refuse_over_limit(loaded, request, prompt, request.generate.max_new_tokens)
    targets, offsets, text = _continuation(loaded, request, prompt)
    n_t, length = len(targets), len(prompt) + len(targets)
    if length > loaded.max_tokens:
        field = "continuation" if request.continuation is not None else "generate"
        raise RequestError(field, f"prompt ({len(prompt)} tokens) + continuation ({n_t} tokens) is over the "
                                  f"model's max_tokens ({loaded.max_tokens})", code=413)
    estimate = cost.refuse_over_limit(loaded, request, prompt, n_t)
    started = time.perf_counter()
    tokens = token_rows(loaded, prompt, targets, offsets, text)
    if request.attribution != "integrated_gradients":
        answer = ablations.explain(loaded, request, prompt, targets, text, tokens)
    else:
        answer = _integrated(loaded, request, prompt, targets, text, tokens)
    if request.n_steps != "auto" or request.attribution != "integrated_gradients":  # "auto" ran an unknown count
        loaded.speed.learn("forward_only" if isinstance(answer, dict) else "integrated_gradients",
                           estimate["calibrated_seconds"], time.perf_counter() - started)
    return answer


def _continuation(loaded, request, prompt: Prompt) -> tuple[list[int], list[tuple[int, int]], str]:
    """The target ids, their offsets in the continuation's text, and that text."""
    if request.continuation is not None:
        cont = loaded.tokenizer(request.continuation, add_special_tokens=False, return_offsets_mapping=True)
        targets, offsets = list(cont["input_ids"]), [tuple(o) for o in cont["offset_mapping"]]
        if not targets:
            raise RequestError("continuation", "produced no tokens")
        return targets, offsets, request.continuation
    limit = loaded.max_tokens - len(prompt)
    _check_size(loaded, request, len(prompt) + request.generate.max_new_tokens, request.generate.max_new_tokens)
    targets = greedy(loaded, torch.tensor(prompt.ids, device=loaded.device), min(request.generate.max_new_tokens, limit))
    text, offsets = _decoded_offsets(loaded.tokenizer, targets)
    return targets, offsets, text


def _integrated(loaded, request, prompt: Prompt, targets: list[int], text: str, tokens: list[dict]) -> GradientsAnswer:
    settings, device, n_t = loaded.settings, loaded.device, len(targets)
    _check_size(loaded, request, len(prompt) + n_t, n_t)
    foils = _foils(loaded, request.foil, n_t)
    ids = torch.tensor(prompt.ids + targets, device=device)
    embed = loaded.model.get_input_embeddings()
    fixed = prompt.fixed + [False] * n_t  # special and template tokens stay themselves ("keep")
    with torch.no_grad():
        x = embed(ids[None])[0].float()
    baseline = baseline_embeddings(loaded, ids, fixed, request.baseline, request.baseline_specials, request.seed)
    if request.continuation_baseline == "keep":
        baseline[len(prompt):] = x[len(prompt):]
    path = ContinuationPath(ids, x, baseline, len(prompt), targets, foils, request.n_steps, request.method, request.score)
    dtype = loaded.dtype_for(request.dtype)
    logits_x, logits_b = continuation_endpoint_logits(loaded, path, dtype)
    if request.n_steps == "auto":
        ends = tuple(continuation_scores(logits[None], targets, foils, request.score)[0].double().numpy()
                     for logits in (logits_x, logits_b))
        gradients = refine_targets(loaded, path, ends, request.tolerance, request.most_steps(settings),
                                   settings.internal_batch_size, dtype)
    else:
        gradients = integrate_targets(loaded, path, settings.internal_batch_size, dtype)
    summary = _summary(loaded, request, prompt, path, gradients, logits_x, logits_b, tokens, text)
    return GradientsAnswer(request=request, summary=summary, path=gradients)


def _foils(loaded, foil, n_t: int) -> list[int] | None:
    if foil is None:
        return None
    if not isinstance(foil, list):
        return [resolve_target(loaded, foil, "foil")] * n_t
    if len(foil) != n_t:
        raise RequestError("foil", f"has {len(foil)} tokens but the continuation has {n_t} target tokens; "
                                   "give one foil for all, or one per target token")
    return [resolve_target(loaded, f, "foil") for f in foil]


def _decoded_offsets(tokenizer, ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """The generated text and each token's span in it (from incremental decoding)."""
    ends = [len(tokenizer.decode(ids[: i + 1])) for i in range(len(ids))]
    return tokenizer.decode(ids), [(a, max(a, b)) for a, b in zip([0] + ends[:-1], ends)]


def _summary(loaded, request, prompt: Prompt, path: ContinuationPath, gradients: ContinuationGradients, logits_x,
             logits_b, tokens, text: str) -> dict:
    n_t, n_prompt = len(path.targets), path.n_prompt
    score_x = continuation_scores(logits_x[None], path.targets, path.foils, path.score)[0]  # [n_t]
    score_b = continuation_scores(logits_b[None], path.targets, path.foils, path.score)[0]
    probs = logits_x.softmax(-1)  # [n_t, V]
    described = described_targets(loaded, path.targets, n_prompt, logits_x)
    ig = gradients.integrated_gradients.sum(-1)  # [n_t, L]
    returned = request.returned
    tolerance = request.tolerance or DEFAULT_TOLERANCE
    spans = token_spans(tokens)
    texts = {**dict(enumerate(prompt.texts)), "c": text}
    word_texts = {1: text, **({0: prompt.texts[0]} if prompt.roles is None else
                              {(0, k): t for k, t in enumerate(prompt.texts)})}
    words = word_rows(tokens, word_texts) if request.aggregate == "word" else None
    sentences = sentence_units(texts, spans) if request.aggregate == "sentence" else None
    sources = source_units(request.sources, prompt.texts, spans) if request.sources is not None else None
    targets = []
    for t in range(n_t):
        position = n_prompt + t
        raw = ig[t, :position]
        delta = float(raw.sum()) - float(score_x[t] - score_b[t])
        share = relative_delta(delta, float(score_x[t]), float(score_b[t]))
        entry = {
            **described[t],
            "foil": choice(loaded, path.foils[t], probs[t]) if path.foils is not None else None,
            "score": float(score_x[t]),
            "baseline_score": float(score_b[t]),
            "convergence_delta": delta,
            "relative_delta": share,
            "within_tolerance": share <= tolerance if share is not None else abs(delta) <= 1e-6,
        }
        if "attributions" in returned:
            entry["attributions"] = attribution_values(raw)
            if words is not None:
                entry["word_attributions"] = attribution_values(word_sums(words, raw))
            _unit_sums(entry, raw, sentences, sources, tokens, prompt)
        if "path_scores" in returned:
            entry["path_scores"] = gradients.path_scores[:, t].tolist()
        targets.append(entry)
    summary = {
        **continuation_answer(loaded, request, prompt, tokens, text),
        "attribution": "integrated_gradients",
        "targets": targets,
        "within_tolerance": all(t["within_tolerance"] for t in targets),
        "score": request.score,
        "contrastive": path.foils is not None,
        "baseline": {
            "name": request.baseline,
            "specials": request.baseline_specials,
            "continuation": request.continuation_baseline,
            "seed": request.seed if request.baseline.startswith("rand") else None,
        },
        "method": request.method,
        "n_steps": len(gradients.alphas),  # the points of the rule used ("auto": as refined)
        "tolerance": tolerance,
        "converged": gradients.converged,
        "dtype": loaded.dtype_for(request.dtype),
    }
    if "attributions" in returned:
        whole = ig[:, : n_prompt + n_t].clone()
        for t in range(n_t):
            whole[t, n_prompt + t:] = 0  # a row covers its own prefix only
        total = whole.sum(0)
        summary["continuation_attributions"] = {"attributions": attribution_values(total)}
        _unit_sums(summary["continuation_attributions"], total, sentences, sources, tokens, prompt, plural=True)
    if "step_sizes" in returned:
        summary["alphas"] = list(gradients.alphas)
        summary["step_sizes"] = gradients.step_sizes.tolist()
    if words is not None:
        summary["words"] = words
    if sentences is not None:
        summary["sentences"] = text_units(sentences, prompt)
    if sources is not None:
        summary["sources"] = text_units(sources, prompt)
    return summary


def _unit_sums(entry: dict, raw, sentences, sources, tokens, prompt: Prompt, plural: bool = False) -> None:
    """A row's (or the whole continuation's) sums per sentence, source and message."""
    name = (lambda k: k) if plural else (lambda k: k[:-1] + "_attributions")  # noqa: E731
    if sentences is not None:
        entry[name("sentences")] = unit_values(sentences, raw)
    if sources is not None:
        entry[name("sources")] = unit_values(sources, raw)
    if prompt.roles is not None:
        entry[name("messages")] = message_values(tokens, raw, prompt.roles)


def explain_each(loaded, requests: list[GradientsRequest]) -> list[GradientsAnswer | RequestError]:
    """Each continuation request on its own path (its chunks hold its own points only)."""
    out = []
    for request in requests:
        try:
            out.append(explain(loaded, request))
        except RequestError as error:
            out.append(error)
    return out


__all__ = ["explain", "explain_each"]


def _check_size(loaded, request: GradientsRequest, length: int, n_t: int) -> None:
    width = loaded.model.get_input_embeddings().embedding_dim
    check_gradients_size(request, loaded.settings, length, width, n_t)
