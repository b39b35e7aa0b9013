"""The attribution methods, one class each in its own module, registered by name (inseq's
registry): the request's `attribution` picks one (exformer.explain.dispatch). Adding a method is
one module here, one line below and its name in the contract's `Attribution` (CONTRIBUTING.md).

>>> sorted(METHODS)
['attnlrp', 'contextcite', 'gradient_x_input', 'integrated_gradients', 'occlusion', 'saliency']
"""

from .attnlrp import AttnLRP
from .base import Method
from .contextcite import ContextCite
from .gradient_x_input import GradientXInput
from .integrated_gradients import IntegratedGradients
from .occlusion import Occlusion
from .saliency import Saliency

METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        IntegratedGradients(),
        GradientXInput(),
        Saliency(),
        AttnLRP(),
        Occlusion(),
        ContextCite(),
    )
}

__all__ = ["METHODS", "Method"]
