"""exformer: attention and gradient explanations for Hugging Face transformers.

>>> from exformer import load_model, explain_attention, explain_gradients   # in this process
>>> from exformer import Client                                             # from a TorchServe

Plain Python + torch: nothing here imports TorchServe, so the same functions serve the
handlers (`exformer.serving`), the tests and a notebook. Both ways answer with the same
typed results (`AttentionResult`, `GradientsResult`: the response dict, with numpy views).
"""

from .contract import AttentionRequest, GradientsRequest
from .errors import RequestError, ServerError
from .results import AttentionResult, GradientsResult
from .settings import Settings

__all__ = ["load_model", "explain_attention", "explain_gradients", "AttentionRequest", "GradientsRequest",
           "RequestError", "ServerError", "LoadedModel", "Settings", "Client", "AsyncClient", "ServedModel",
           "AttentionResult", "GradientsResult"]
__version__ = "0.2.0"

# Imported on first use: the archives carry this package into TorchServe workers, which need
# neither the client nor httpx, and the client and `exformer explain` need no torch.
_LAZY = {"Client": "client", "AsyncClient": "client", "ServedModel": "client",
         "explain_attention": "api", "explain_gradients": "api", "load_model": "loading", "LoadedModel": "loading"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'exformer' has no attribute {name!r}")
