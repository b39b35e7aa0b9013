"""exformer: attention and gradient explanations for Hugging Face transformers.

>>> from exformer import load_model, explain_attention, explain_gradients   # in this process
>>> from exformer import Client                                             # from a TorchServe

Plain Python + torch: nothing here imports TorchServe, so the same functions serve the
handlers (`exformer.serving`), the tests and a notebook. Both ways answer with the same
typed results (`AttentionResult`, `GradientsResult`: the response dict, with numpy views).

The subpackages import one way (a test checks it with import-linter): `contract` (pydantic,
no torch) ← `core` (torch) ← `explain` (requests → responses) ← `serving` (TorchServe);
`contract` ← `client` (no torch); `cli` on top.
"""

from .client.results import AttentionResult, GradientsResult
from .contract.errors import RequestError, ServerError
from .contract.requests import AttentionRequest, GradientsRequest
from .contract.settings import Settings

__all__ = [
    "load_model",
    "explain_attention",
    "explain_gradients",
    "AttentionRequest",
    "GradientsRequest",
    "RequestError",
    "ServerError",
    "LoadedModel",
    "Settings",
    "Client",
    "AsyncClient",
    "ServedModel",
    "AttentionResult",
    "GradientsResult",
]
__version__ = "0.2.0"

# Imported on first use: the archives carry this package into TorchServe workers, which need
# no httpx, and the client and `exformer explain` need no torch (the base install has none).
_LAZY = {
    "Client": "client.http",
    "AsyncClient": "client.http",
    "ServedModel": "client.http",
    "explain_attention": "explain.api",
    "explain_gradients": "explain.api",
    "load_model": "core.loading",
    "LoadedModel": "core.loading",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'exformer' has no attribute {name!r}")
