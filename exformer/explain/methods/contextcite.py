"""ContextCite (Cohen-Wang et al. 2024, MIT's `context-cite` package): random ablations of the
prompt's units and a sparse linear surrogate of each target's score.

Mask k keeps each unit with probability p (drawn as the package does: exformer.core.ablation.
contextcite_masks); y_k,t = log p_t/(1 − p_t) of target t after the masked prompt (and for the
whole answer the logit of the continuation's probability); per target a Lasso fit
y_k,t ≈ w_t · mask_k + b_t (alpha 0.01, on standardized masks) whose weights w_t are the
attributions. The masks past `n_ablations` are held out: the surrogate's R², Spearman ρ (the
package's LDS) and mean absolute error on them say how far to trust it.
"""

import numpy as np

from ...contract.vocabulary import DEFAULT_ABLATIONS, DEFAULT_KEEP_PROBABILITY
from ...core.ablation import (
    LASSO_ALPHA,
    contextcite_masks,
    continuation_logit_probability,
    fit_surrogate,
    score_versions,
    surrogate_fit,
)
from ...core.loading import LoadedModel
from .. import ablations
from ..plan import Plan
from .occlusion import Occlusion


class ContextCite(Occlusion):
    name = "contextcite"

    def n_prompts(self, request, n_units: int) -> int:
        """The whole prompt and one per mask, at most the 2^units distinct masks."""
        masks = (request.n_ablations or DEFAULT_ABLATIONS) + ablations.n_holdout(request)
        return min(masks + 1, 2 ** min(n_units, 62))

    def cheaper(self, request, fields: dict) -> list[tuple[str, dict]]:
        n = request.n_ablations or DEFAULT_ABLATIONS
        return [(f'"n_ablations": {n // 2}', fields | {"n_ablations": n // 2})] if n > 16 else []

    def run(self, loaded: LoadedModel, plan: Plan) -> dict:
        request, units, (targets, _) = plan.request, self.units(loaded, plan), plan.known()
        n_t = len(targets)
        n_fit, keep = request.n_ablations or DEFAULT_ABLATIONS, request.keep_probability or DEFAULT_KEEP_PROBABILITY
        masks = contextcite_masks(len(units), n_fit + ablations.n_holdout(request), keep, request.seed)  # True: kept
        removals = [[int(u) for u in np.flatnonzero(~mask)] for mask in masks]
        versions, distinct = ablations.ablated_prompts(loaded, request, plan.prompt, units, removals)
        scores = score_versions(loaded, [list(d) for d in distinct], targets)
        outputs = scores.logit_probability[versions]  # [masks, n_t]
        fitted = [fit_surrogate(masks[:n_fit], outputs[:n_fit, t]) for t in range(n_t)]
        per_target = np.stack([w for w, _ in fitted], 1)
        answer = continuation_logit_probability(outputs)  # [masks]
        whole, intercept = fit_surrogate(masks[:n_fit], answer[:n_fit], n_tokens=n_t)
        surrogate = {
            "n_ablations": n_fit,
            "n_holdout": ablations.n_holdout(request),
            "keep_probability": keep,
            "seed": request.seed,
            "lasso_alpha": LASSO_ALPHA,
            "intercept": intercept,
            "fit": surrogate_fit(whole, intercept, masks[n_fit:], answer[n_fit:]),
            "n_distinct_prompts": len(distinct),
        }
        return ablations.answer(
            loaded,
            request,
            plan,
            units,
            scores,
            "logit_probability",
            per_target,
            whole,
            scores.logit_probability[0],
            len(distinct),
            surrogate,
        )
