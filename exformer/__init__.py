"""exformer: attention and gradient explanations for Hugging Face transformers.

>>> from exformer import load_model, explain_attention, explain_gradients

Plain Python + torch: nothing here imports TorchServe, so the same functions serve the
handlers (`exformer.serving`), the tests and a notebook.
"""

from .api import explain_attention, explain_gradients
from .contract import AttentionRequest, GradientsRequest
from .errors import RequestError
from .loading import LoadedModel, load_model
from .settings import Settings

__all__ = ["load_model", "explain_attention", "explain_gradients", "AttentionRequest", "GradientsRequest",
           "RequestError", "LoadedModel", "Settings"]
__version__ = "0.2.0"
