"""Gradients requests → responses: prepare each request's path, run them all in one pass
(`integrated.py`), and summarise each path as the contract's response.

What is attributed: F, the softmax probability (`score: "probability"`, default) or the raw
logit (`score: "logit"`, what the old int-gradients-server attributed) of the target — a class
of a sequence classifier, or the next token after the prompt of a causal LM — as a function
of the word-embedding output x = model.get_input_embeddings()(ids), shape [T, E]. Positions
and token types stay as they are (captum's LayerIntegratedGradients on that layer does the
same). The same F gives the prediction, the path scores and the convergence delta.
"""

import torch

from ..contract.errors import RequestError
from ..contract.requests import GradientsRequest
from ..core.baselines import baseline_embeddings
from ..core.batching import TOO_LARGE, default_chunk_points, target_scores
from ..core.integrated import PathGradients, StraightPath, endpoint_logits, integrate
from ..core.tokens import Encoded, encode, token_table
from ..core.words import word_rows, word_sums
from . import generation
from .attention import top_k_predictions
from .encoding import check_gradients_size
from .responses import GradientsAnswer, attribution_values


def explain_batch(loaded, requests: list[GradientsRequest]) -> list[GradientsAnswer | RequestError]:
    """One result per request, computed together: the requests' path points share chunks (one
    pass per dtype where the requests ask for different ones).

    A request that cannot be prepared (its response would be too large, its text tokenizes
    to nothing) or does not fit in memory gets its RequestError in its place; the others are
    still answered.
    """
    settings = loaded.settings
    if any(request.details_only for request in requests):
        raise ValueError("a details request (no text) has no gradients; answer it with loaded.details()")
    if any(request.generation for request in requests):  # continuations: one path each
        continued = iter(generation.explain_each(loaded, [r for r in requests if r.generation]))
        single = iter(explain_batch(loaded, [r for r in requests if not r.generation]))
        return [next(continued) if r.generation else next(single) for r in requests]
    if not requests:
        return []
    dtypes = [loaded.dtype_for(request.dtype) for request in requests]
    if len(set(dtypes)) > 1:  # one pass per dtype: a pass computes in one
        groups = {d: iter(explain_batch(loaded, [r for r, rd in zip(requests, dtypes) if rd == d])) for d in set(dtypes)}
        return [next(groups[d]) for d in dtypes]
    dtype = dtypes[0]
    prepared: list = []
    for request in requests:
        try:
            prepared.append(_prepare(loaded, request))
        except RequestError as error:
            prepared.append(error)
    todo = [p for p in prepared if not isinstance(p, RequestError)]
    if not todo:
        return prepared
    paths = [path for _, path, _ in todo]
    failed: set[int] = set()
    chunk = settings.internal_batch_size or default_chunk_points(max(len(p) for p in paths), loaded.device)
    ends = endpoint_logits(loaded, paths, chunk, dtype, too_large=failed.add)
    for path, end in zip(paths, ends):  # the default target is the model's own choice at x
        if end is None:
            continue
        if path.target is None:
            path.target = int(end[0].argmax())
        path.ends = tuple(target_scores(torch.stack(end), [path.target] * 2, [path.score] * 2).tolist())
    live = [i for i in range(len(paths)) if i not in failed]
    gradients = integrate(loaded, [paths[i] for i in live], settings.internal_batch_size, dtype,
                          too_large=lambda j: failed.add(live[j]))
    by_path = dict(zip(live, gradients))
    results = iter(
        RequestError("text", TOO_LARGE, code=413) if i in failed
        else _result(loaded, *todo[i], by_path[i], *ends[i])
        for i in range(len(todo))
    )
    return [p if isinstance(p, RequestError) else next(results) for p in prepared]


def _prepare(loaded, request: GradientsRequest) -> tuple[GradientsRequest, StraightPath, Encoded]:
    encoded = encode(loaded, request.text, request.text_pair)
    embed = loaded.model.get_input_embeddings()
    n_steps = request.most_steps(loaded.settings)  # adaptive: at most max_n_steps
    check_gradients_size(request, loaded.settings, len(encoded), embed.embedding_dim)
    ids = encoded.inputs["input_ids"][0]
    with torch.no_grad():
        x = embed(ids[None])[0].float()
    baseline = baseline_embeddings(loaded, ids, encoded.special, request.baseline, request.baseline_specials, request.seed)
    path = StraightPath(encoded.inputs, x, baseline, request.target, request.n_steps, request.method, request.score,
                        request.tolerance, n_steps)
    return request, path, encoded


def _result(loaded, request, path: StraightPath, encoded, gradients: PathGradients, logits_x, logits_b) -> GradientsAnswer:
    score_x, score_b = target_scores(torch.stack([logits_x, logits_b]), [path.target] * 2, [path.score] * 2).tolist()
    ig = gradients.integrated_gradients  # [T, E]
    raw = ig.sum(-1)  # [T]
    summary = {
        "model": loaded.details(),
        "tokens": token_table(loaded, encoded, request.text, request.text_pair),
        "truncated": encoded.truncated,
        "n_tokens_input": encoded.n_tokens_input,
        "n_tokens_dropped": encoded.n_tokens_dropped,
        "prediction": _prediction(loaded, logits_x),
        "score": request.score,
        "target": {**_describe_target(loaded, path.target), "score": score_x},
        "baseline": {
            "name": request.baseline,
            "specials": request.baseline_specials,
            "seed": request.seed if request.baseline.startswith("rand") else None,
            "score": score_b,
        },
        "method": request.method,
        "n_steps": len(gradients.alphas),  # the points of the rule used ("auto": as refined)
        "tolerance": request.tolerance,
        "converged": gradients.converged,
        "dtype": loaded.dtype_for(request.dtype),
        "convergence_delta": float(ig.sum()) - (score_x - score_b),
    }
    returned = request.returned
    if "attributions" in returned:
        summary["attributions"] = attribution_values(raw)
        if request.aggregate == "word":
            summary["words"] = word_rows(summary["tokens"], {0: request.text, 1: request.text_pair})
            summary["word_attributions"] = attribution_values(word_sums(summary["words"], raw))
    if "step_sizes" in returned:
        summary["alphas"] = list(gradients.alphas)
        summary["step_sizes"] = gradients.step_sizes.tolist()
    if "path_scores" in returned:
        summary["path_scores"] = gradients.path_scores.tolist()
        summary["gradient_norms"] = gradients.gradient_norms.tolist()
    return GradientsAnswer(request=request, summary=summary, path=gradients)


def _prediction(loaded, logits: torch.Tensor) -> dict:
    probs = logits.softmax(-1)
    if loaded.head == "sequence-classification":
        return {"label": loaded.labels[int(probs.argmax())], "probabilities": dict(zip(loaded.labels, probs.tolist()))}
    return {"next_tokens": top_k_predictions(loaded, logits[None], loaded.settings.default_top_k)[0]}


def _describe_target(loaded, target: int) -> dict:
    if loaded.head == "sequence-classification":
        return {"index": target, "label": loaded.labels[target]}
    tokenizer = loaded.tokenizer
    return {"index": target, "token": tokenizer.convert_ids_to_tokens(target), "text": tokenizer.decode([target])}
