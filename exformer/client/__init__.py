"""Talking to a served model without torch: imports exformer.contract only (httpx, numpy, orjson).

`Client` / `AsyncClient` (`http`), the typed results that are the response dicts
(`results`), and the visualizer's own views as self-contained HTML (`views`).

>>> from exformer.client import Client
"""

from .results import AttentionResult, GradientsResult

__all__ = ["Client", "AsyncClient", "ServedModel", "AttentionResult", "GradientsResult"]


def __getattr__(name: str):  # httpx only where a client is made: the workers import this package too
    if name in ("Client", "AsyncClient", "ServedModel"):
        from . import http

        return getattr(http, name)
    raise AttributeError(f"module 'exformer.client' has no attribute {name!r}")
