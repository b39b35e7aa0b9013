"""AttnLRP (Achtibat et al., ICML 2024): layer-wise relevance propagation through attention, as
gradient × input at the input under the rules of exformer.core.lrp:

    Rᵢ(x) = xᵢ · ∂̃F/∂xᵢ(x),

∂̃ the backward changed by the rules (identity for norms and activations, uniform for the
products, the softmax's own gradient), F the target's logit unless the request names another
score. One forward, and one backward per target: no path, so nothing is left unfinished. Not
conservative (the softmax rule): a row's relevances need not sum to F, so answers carry no
convergence delta; judge them with `evaluate`. The word-embedding row is relevance at x − 0:
special and template tokens get theirs too (the attention sink on the first token is visible).

LRP is patented (Fraunhofer HHI); its authors' licence makes it free for personal and scientific
use. It runs only when a request asks for `"attribution": "attnlrp"`.
"""

import dataclasses
from contextlib import contextmanager

from ...contract.errors import RequestError
from ...contract.requests import GradientsRequest
from ...core.loading import LoadedModel
from ...core.lrp import attnlrp, refusal
from ..plan import Plan
from .gradient_x_input import GradientXInput


class AttnLRP(GradientXInput):
    name = "attnlrp"
    complete = False
    has_baseline = False  # relevance at x − 0: no baseline to choose or report

    def rule(self, request: GradientsRequest) -> GradientsRequest:
        score = request.score if "score" in request.model_fields_set else "logit"
        return (
            super()
            .rule(request)
            .model_copy(update={"baseline": "zero", "baseline_specials": "replace", "seed": None, "score": score})
        )

    def run(self, loaded: LoadedModel, plan: Plan):
        with _rules(loaded):
            return super().run(loaded, plan)

    def run_single(self, loaded: LoadedModel, requests: list[GradientsRequest]) -> list:
        with _rules(loaded):
            return super().run_single(loaded, requests)


@contextmanager
def _rules(loaded: LoadedModel):
    """The rules on the model's own layers for one pass (so not the classifier's position-0-only
    last layer, which computes its attention itself)."""
    reason = refusal(loaded.model)
    if reason is not None:
        raise RequestError("attribution", f'"attnlrp": {reason}; use another method')
    options = loaded.options
    loaded.options = dataclasses.replace(options, head_position_only=False)
    try:
        with attnlrp(loaded.model):
            yield
    finally:
        loaded.options = options
