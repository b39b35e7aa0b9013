"""Gradient × input (Shrikumar et al. 2016; captum's InputXGradient on the embedding layer):

    GxIᵢ(x) = (xᵢ − x′ᵢ) · ∂F/∂xᵢ(x),

summed over the hidden size: integrated gradients with a one-point rule at α = 1 (one forward,
and one backward per target), so the same passes, answers and convergence delta, which here says
how far F is from linear between x′ and x. With the "zero" baseline it is captum's x · ∂F/∂x.
"""

from ...contract.requests import GradientsRequest
from .integrated_gradients import IntegratedGradients


class GradientXInput(IntegratedGradients):
    name = "gradient_x_input"

    def rule(self, request: GradientsRequest) -> GradientsRequest:
        return request.model_copy(update={"method": "riemann_right", "n_steps": 1, "tolerance": None})

    def least_points(self, request: GradientsRequest) -> int | None:
        return None

    def cheaper(self, request: GradientsRequest, fields: dict) -> list[tuple[str, dict]]:
        return []
