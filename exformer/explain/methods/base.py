"""What an attribution method is to the dispatcher (exformer.explain.dispatch): a name, how its
cost is counted, its cheaper variants, and how it runs a planned request.

A continuation request (a causal LM's answer: `continuation`/`generate`) is planned once
(exformer.explain.plan.Plan: the prompt, its units, the targets once known); the plan serves the
estimate (`cost`, closed form), the refusal and the run. A single-target request (a classifier's
class, a next token) runs through `run_single`, batched as TorchServe hands it.
"""

from ...contract.requests import GradientsRequest
from ...core.loading import LoadedModel
from ...core.units import Unit
from ..plan import Plan


class Method:
    name: str  # the request's "attribution"
    speed: str = "integrated_gradients"  # which measured speed its estimates use: a gradient pass or "forward_only"
    single_target: bool = True  # whether it explains a classifier's class or a next token (not only continuations)

    def cost(self, loaded: LoadedModel, plan: Plan, points: int | None = None) -> dict:
        """The request's forwards, backwards, positions, seconds and peak memory (exformer.core.cost),
        counted from the plan; `points`: integrated gradients at that many path points."""
        raise NotImplementedError

    def units(self, loaded: LoadedModel, plan: Plan) -> list[Unit]:
        """A forward-only method's units of the prompt: what it leaves out (and is evaluated on)."""
        raise NotImplementedError(f"{self.name} leaves no units out")

    def least_points(self, request: GradientsRequest) -> int | None:
        """The fewest path points the request runs (what a refusal is judged on), if it may run more."""
        return None

    def cheaper(self, request: GradientsRequest, fields: dict) -> list[tuple[str, dict]]:
        """Cheaper variants of the request: (how a user says it, its fields)."""
        return []

    def run(self, loaded: LoadedModel, plan: Plan):
        """A continuation's answer (a GradientsAnswer, or a checked dict)."""
        raise NotImplementedError

    def run_single(self, loaded: LoadedModel, requests: list[GradientsRequest]) -> list:
        """Single-target requests of one batch: an answer or a RequestError each."""
        raise NotImplementedError
