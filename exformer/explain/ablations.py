"""Forward-only requests (`attribution`: "occlusion" or "contextcite") → the contract's
AblationResponse: the units of the prompt, the versions of the prompt each method runs, and
one value per unit per target token and for the whole continuation (exformer.core.ablation).
"""

import numpy as np
import torch

from ..contract.responses import AblationResponse
from ..contract.vocabulary import DEFAULT_ABLATIONS, DEFAULT_HOLDOUT, DEFAULT_KEEP_PROBABILITY
from ..core.ablation import (
    LASSO_ALPHA,
    contextcite_masks,
    continuation_logit_probability,
    fit_surrogate,
    score_versions,
    surrogate_fit,
)
from ..core.baselines import baseline_token_id
from ..core.prompts import Prompt, prompt_ids
from ..core.units import ablate_text, sentence_units, source_units
from ..core.words import word_rows
from .responses import checked
from .rows import continuation_answer, described_targets, text_units, token_spans


def units_of(request, prompt: Prompt, tokens: list[dict]) -> list[dict]:
    """What the method leaves out: the prompt's content tokens, words, sentences or sources,
    each with the text it lies in ("where": index into prompt.texts) and its tokens."""
    prompt_rows = [r for r in tokens if not r["target"]]
    spans = token_spans(prompt_rows)
    kind = request.units
    if kind == "source":
        return source_units(request.sources, prompt.texts, spans)
    if kind == "sentence":
        return sentence_units(dict(enumerate(prompt.texts)), spans)
    if kind == "word":
        texts = {0: prompt.texts[0]} if prompt.roles is None else {(0, k): t for k, t in enumerate(prompt.texts)}
        words = word_rows(prompt_rows, texts)
        return [{"id": f"w{k}", "where": w.get("message") or 0, "start": w["start"], "end": w["end"],
                 "text": w["text"], "tokens": w["tokens"]} for k, w in enumerate(words)]
    return [{"id": f"t{i}", "where": span[0], "start": span[1], "end": span[2],
             "text": prompt.texts[span[0]][span[1]:span[2]], "tokens": [i]}
            for i, span in enumerate(spans) if span is not None]


def version_ids(loaded, request, prompt: Prompt, units: list[dict], removed: list[int]) -> tuple[int, ...]:
    """The prompt's ids with the units `removed` left out: their text taken out and the prompt
    tokenized again (as ContextCite), or their tokens replaced by the baseline token."""
    if request.ablation == "baseline":
        token = baseline_token_id(loaded.tokenizer, request.baseline)
        ids = list(prompt.ids)
        for u in removed:
            for i in units[u]["tokens"]:
                ids[i] = token
        return tuple(ids)
    texts = list(prompt.texts)
    for where in {units[u]["where"] for u in removed}:
        texts[where] = ablate_text(prompt.texts[where], [(units[u]["start"], units[u]["end"])
                                                         for u in removed if units[u]["where"] == where])
    return tuple(prompt_ids(loaded, request, texts))


def plan(loaded, request, prompt: Prompt, units: list[dict]) -> tuple[list[int], list[tuple[int, ...]], np.ndarray | None]:
    """For each ablation the index of its prompt among the distinct prompts (the whole prompt
    first; identical ones run once), those prompts, and contextcite's masks (True: kept)."""
    n = len(units)
    if request.attribution == "occlusion":
        removals, masks = [[u] for u in range(n)], None
    else:
        count = (request.n_ablations or DEFAULT_ABLATIONS) + n_holdout(request)
        masks = contextcite_masks(n, count, request.keep_probability or DEFAULT_KEEP_PROBABILITY, request.seed)
        removals = [list(np.flatnonzero(~mask)) for mask in masks]
    versions = [version_ids(loaded, request, prompt, units, r) for r in removals]
    distinct = list(dict.fromkeys([tuple(prompt.ids), *versions]))
    row = {d: k for k, d in enumerate(distinct)}
    return [row[v] for v in versions], distinct, masks


def n_holdout(request) -> int:
    return DEFAULT_HOLDOUT if request.n_holdout is None else request.n_holdout


def explain(loaded, request, prompt: Prompt, targets: list[int], text: str, tokens: list[dict]) -> dict:
    units = units_of(request, prompt, tokens)
    versions, distinct, masks = plan(loaded, request, prompt, units)
    scores = score_versions(loaded, [list(d) for d in distinct], targets)
    n_t = len(targets)
    described = described_targets(loaded, targets, len(prompt), torch.from_numpy(scores.full_logits))
    ids = [u["id"] for u in units]
    surrogate = None
    if request.attribution == "occlusion":
        score = request.score
        per_target = scores.of(score)[0][None, :] - scores.of(score)[versions]  # [units, n_t]
        whole = scores.log_probability[0].sum() - scores.log_probability[versions].sum(-1)  # Σ log p
        full = scores.of(score)[0]
    else:
        score = "logit_probability"
        n_fit = request.n_ablations or DEFAULT_ABLATIONS
        outputs = scores.logit_probability[versions]  # [masks, n_t]
        fitted = [fit_surrogate(masks[:n_fit], outputs[:n_fit, t]) for t in range(n_t)]
        per_target = np.stack([w for w, _ in fitted], 1)
        answer = continuation_logit_probability(outputs)  # [masks]
        whole, intercept = fit_surrogate(masks[:n_fit], answer[:n_fit], n_tokens=n_t)
        full = scores.logit_probability[0]
        surrogate = {"n_ablations": n_fit, "n_holdout": n_holdout(request),
                     "keep_probability": request.keep_probability or DEFAULT_KEEP_PROBABILITY, "seed": request.seed,
                     "lasso_alpha": LASSO_ALPHA, "intercept": intercept,
                     "fit": surrogate_fit(whole, intercept, masks[n_fit:], answer[n_fit:]),
                     "n_distinct_prompts": len(distinct)}
    for t, target in enumerate(described):
        target["score"] = float(full[t])
        target["attributions"] = [{"id": i, "attribution": float(v)} for i, v in zip(ids, per_target[:, t])]
    response = {
        **continuation_answer(loaded, request, prompt, tokens, text),
        "attribution": request.attribution,
        "unit": request.units,
        "ablation": request.ablation,
        "baseline": request.baseline if request.ablation == "baseline" else None,
        "score": score,
        "units": text_units(units, prompt),
        "targets": described,
        "continuation_attributions": [{"id": i, "attribution": float(v)} for i, v in zip(ids, whole)],
        "surrogate": surrogate,
        "forwards": len(distinct),
    }
    return checked(AblationResponse, response)
