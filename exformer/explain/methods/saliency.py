"""Saliency (Simonyan et al. 2014): how strongly F reacts to each token, the gradient's norm over
the hidden size at the input,

    Sᵢ(x) = ‖∂F/∂xᵢ(x)‖₂,

one forward and one backward per target (the pass of gradient × input). Unsigned and without a
baseline, so no completeness: its answers carry no convergence delta.
"""

import torch

from .gradient_x_input import GradientXInput


class Saliency(GradientXInput):
    name = "saliency"
    complete = False
    has_baseline = False

    def token_values(self, gradients) -> torch.Tensor:
        return gradients.intermediate_gradients.select(-3, 0).norm(dim=-1)  # the one point's gradient: [(n_t,) T]
