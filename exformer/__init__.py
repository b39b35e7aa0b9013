"""exformer: attention and gradient explanations for Hugging Face transformers.

>>> from exformer import load_model, explain_attention, explain_gradients   # in this process
>>> from exformer import Client                                             # from a TorchServe

Plain Python + torch: nothing here imports TorchServe, so the same functions serve the
handlers (`exformer.serving`), the tests and a notebook. Both ways answer with the same
typed results (`AttentionResult`, `GradientsResult`: the response dict, with numpy views).
"""

from .api import explain_attention, explain_gradients
from .contract import AttentionRequest, GradientsRequest
from .errors import RequestError, ServerError
from .loading import LoadedModel, load_model
from .results import AttentionResult, GradientsResult
from .settings import Settings

__all__ = ["load_model", "explain_attention", "explain_gradients", "AttentionRequest", "GradientsRequest",
           "RequestError", "ServerError", "LoadedModel", "Settings", "Client", "AsyncClient", "ServedModel",
           "AttentionResult", "GradientsResult"]
__version__ = "0.2.0"

_CLIENT = ("Client", "AsyncClient", "ServedModel")


def __getattr__(name: str):
    """The client on first use: the archives carry this package into TorchServe workers,
    which need neither the client nor httpx."""
    if name in _CLIENT:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'exformer' has no attribute {name!r}")
