"""Requests → responses, the only place that builds them: imports exformer.core and
exformer.contract (and the client's result types, for the notebook API).

`parse_request` applies the contract's rules and the loaded model's (`checks`); then
`attention.attention_response` or `gradients.explain_batch` answer; `api` is the notebook
face of the same (`exformer.explain_attention`, `exformer.explain_gradients`).
"""

from .checks import check, parse_request, resolve_target

__all__ = ["check", "parse_request", "resolve_target"]
