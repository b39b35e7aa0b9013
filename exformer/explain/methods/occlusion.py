"""Occlusion (leave one unit out; Zeiler & Fergus 2014, Li et al. 2016): for each unit u of the
prompt (a token, word, sentence or source) and each target token t of the continuation,

    value(u, t) = F_t(prompt) − F_t(prompt without u),

positive where the unit raised the target's score; for the whole answer, the drop of
Σₜ log p(yₜ). One forward per unit, batched on the KV cache of the prefix they share
(exformer.core.ablation.score_versions), no backward.
"""

from ...core.ablation import score_versions
from ...core.loading import LoadedModel
from ...core.units import Unit
from .. import ablations
from ..plan import Plan
from ..rows import token_rows
from .base import Method


class Occlusion(Method):
    name = "occlusion"
    speed = "forward_only"
    single_target = False

    def units(self, loaded: LoadedModel, plan: Plan) -> list[Unit]:
        """What is left out, made once per plan (the estimate's count is the run's)."""
        if plan.units is None:
            rows = token_rows(loaded, plan.prompt, [], [], "")
            plan.units = ablations.units_of(plan.request, plan.prompt, rows)
        return plan.units

    def n_prompts(self, request, n_units: int) -> int:
        """The most distinct prompts it runs: the whole prompt and one per removal."""
        return n_units + 1

    def cost(self, loaded: LoadedModel, plan: Plan, points: int | None = None) -> dict:
        units = self.units(loaded, plan)
        ablations.check_count(loaded, plan.request, len(units))
        return ablations.forward_cost_of(loaded, plan, units, self.n_prompts(plan.request, len(units)))

    def run(self, loaded: LoadedModel, plan: Plan) -> dict:
        request, units, (targets, _) = plan.request, self.units(loaded, plan), plan.known()
        versions, distinct = ablations.ablated_prompts(
            loaded, request, plan.prompt, units, [[u] for u in range(len(units))]
        )
        scores = score_versions(loaded, [list(d) for d in distinct], targets)
        per_target = scores.of(request.score)[0][None, :] - scores.of(request.score)[versions]  # [units, n_t]
        whole = scores.log_probability[0].sum() - scores.log_probability[versions].sum(-1)  # Σ log p
        return ablations.answer(
            loaded,
            request,
            plan,
            units,
            scores,
            request.score,
            per_target,
            whole,
            scores.of(request.score)[0],
            len(distinct),
        )
