"""Continuation requests → responses: a causal LM's continuation (given, or generated
greedily) attributed row by row (exformer.core.continuation), each target described (its
probability, entropy, alternatives, foil) and its row summed per word when asked.

>>> from exformer import load_model, explain_gradients
>>> lm = load_model("build/models/smollm2")
>>> r = explain_gradients(lm, {"text": "The capital of France is", "continuation": " Paris"}, n_steps=32)
>>> [len(t["attributions"]["raw"]) for t in r["targets"]]
[5]
"""

import torch

from ..contract.errors import RequestError
from ..contract.requests import GradientsRequest
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
from ..core.tokens import encode, token_table
from ..core.words import word_rows, word_sums
from .checks import resolve_target
from .encoding import check_gradients_size
from .responses import GradientsAnswer, attribution_values


def explain(loaded, request: GradientsRequest) -> GradientsAnswer:
    """One continuation/generate request, answered (RequestError naming the field if it cannot be)."""
    settings = loaded.settings
    encoded = encode(loaded, request.text)
    prompt = encoded.ids
    field = "continuation" if request.continuation is not None else "generate"
    device = loaded.device
    if request.continuation is not None:
        cont = loaded.tokenizer(request.continuation, add_special_tokens=False, return_offsets_mapping=True)
        targets, offsets = list(cont["input_ids"]), [tuple(o) for o in cont["offset_mapping"]]
        if not targets:
            raise RequestError("continuation", "produced no tokens")
        text = request.continuation
    else:
        limit = loaded.max_tokens - len(prompt)
        if limit < 1:
            raise RequestError("text", f"has {len(prompt)} tokens, the model's max_tokens ({loaded.max_tokens}): "
                                       "no room to generate", code=413)
        _check_size(loaded, request, len(prompt) + request.generate.max_new_tokens, request.generate.max_new_tokens)
        targets = greedy(loaded, torch.tensor(prompt, device=device), min(request.generate.max_new_tokens, limit))
        text, offsets = _decoded_offsets(loaded.tokenizer, targets)
    n_t, length = len(targets), len(prompt) + len(targets)
    if length > loaded.max_tokens:
        raise RequestError(field, f"prompt ({len(prompt)} tokens) + continuation ({n_t} tokens) is over the "
                                  f"model's max_tokens ({loaded.max_tokens})", code=413)
    _check_size(loaded, request, length, n_t)
    foils = _foils(loaded, request.foil, n_t)
    ids = torch.tensor(prompt + targets, device=device)
    embed = loaded.model.get_input_embeddings()
    special = encoded.special + [False] * n_t
    with torch.no_grad():
        x = embed(ids[None])[0].float()
    baseline = baseline_embeddings(loaded, ids, special, request.baseline, request.baseline_specials, request.seed)
    if request.continuation_baseline == "keep":
        baseline[len(prompt):] = x[len(prompt):]
    path = ContinuationPath(ids, x, baseline, len(prompt), targets, foils, request.n_steps, request.method, request.score)
    logits_x, logits_b = continuation_endpoint_logits(loaded, path, loaded.dtype)
    if request.n_steps == "auto":
        ends = tuple(continuation_scores(logits[None], targets, foils, request.score)[0].double().numpy()
                     for logits in (logits_x, logits_b))
        gradients = refine_targets(loaded, path, ends, request.tolerance, request.most_steps(settings),
                                   settings.internal_batch_size, loaded.dtype)
    else:
        gradients = integrate_targets(loaded, path, settings.internal_batch_size, loaded.dtype)
    tokens = _token_rows(loaded, encoded, request.text, targets, offsets, text)
    summary = _summary(loaded, request, path, gradients, logits_x, logits_b, tokens, encoded, text)
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


def _token_rows(loaded, encoded, prompt: str, targets, offsets, text: str) -> list[dict]:
    rows = [{**row, "target": False} for row in token_table(loaded, encoded, prompt, None)]
    strings = loaded.tokenizer.convert_ids_to_tokens(targets)
    specials = set(loaded.tokenizer.all_special_ids)
    for i, (tid, tok, (a, b)) in enumerate(zip(targets, strings, offsets)):
        rows.append({"index": len(rows), "text": tok, "id": tid, "start": a, "end": b, "surface": text[a:b],
                     "segment": 1, "special": tid in specials, "target": True})
    return rows


def _choice(loaded, token_id: int, probs: torch.Tensor) -> dict:
    tok = loaded.tokenizer
    return {"id": token_id, "token": tok.convert_ids_to_tokens(token_id), "text": tok.decode([token_id]),
            "probability": float(probs[token_id])}


def _summary(loaded, request, path: ContinuationPath, gradients: ContinuationGradients, logits_x, logits_b,
             tokens, encoded, text: str) -> dict:
    n_t, n_prompt = len(path.targets), path.n_prompt
    score_x = continuation_scores(logits_x[None], path.targets, path.foils, path.score)[0]  # [n_t]
    score_b = continuation_scores(logits_b[None], path.targets, path.foils, path.score)[0]
    probs = logits_x.softmax(-1)  # [n_t, V]
    entropy = -(probs * logits_x.log_softmax(-1)).sum(-1)
    top = probs.topk(loaded.settings.default_top_k, dim=-1).indices.tolist()
    ig = gradients.integrated_gradients.sum(-1)  # [n_t, L]
    returned = request.returned
    words = word_rows(tokens, {0: request.text, 1: text}) if request.aggregate == "word" else None
    targets = []
    for t in range(n_t):
        position = n_prompt + t
        raw = ig[t, :position]
        entry = {
            "position": position,
            **{k: v for k, v in _choice(loaded, path.targets[t], probs[t]).items() if k != "probability"},
            "probability": float(probs[t, path.targets[t]]),
            "entropy": float(entropy[t]),
            "alternatives": [_choice(loaded, i, probs[t]) for i in top[t]],
            "foil": _choice(loaded, path.foils[t], probs[t]) if path.foils is not None else None,
            "score": float(score_x[t]),
            "baseline_score": float(score_b[t]),
            "convergence_delta": float(raw.sum()) - float(score_x[t] - score_b[t]),
        }
        if "attributions" in returned:
            entry["attributions"] = attribution_values(raw)
            if words is not None:
                entry["word_attributions"] = attribution_values(word_sums(words, raw))
        if "path_scores" in returned:
            entry["path_scores"] = gradients.path_scores[:, t].tolist()
        targets.append(entry)
    summary = {
        "model": loaded.details(),
        "tokens": tokens,
        "truncated": encoded.truncated,
        "n_tokens_input": encoded.n_tokens_input,
        "n_tokens_dropped": encoded.n_tokens_dropped,
        "continuation": text,
        "generated": request.generate is not None,
        "targets": targets,
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
        "tolerance": request.tolerance,
        "converged": gradients.converged,
        "dtype": loaded.dtype,
    }
    if "step_sizes" in returned:
        summary["alphas"] = list(gradients.alphas)
        summary["step_sizes"] = gradients.step_sizes.tolist()
    if words is not None:
        summary["words"] = words
    return summary


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
