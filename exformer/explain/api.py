"""The notebook API: load a model directory, explain texts, get what the server would answer.

>>> from exformer import load_model, explain_attention, explain_gradients
>>> model = load_model("build/models/sentiment")
>>> a = explain_attention(model, "A fine film.")
>>> a["attention"]["shape"], a.attention.shape
([6, 12, 6, 6], (6, 12, 6, 6))
>>> round(explain_gradients(model, "A fine film.", n_steps=32)["convergence_delta"], 3)
0.0
>>> r = explain_attention(model, "A fine film.", rollout=True, heads="mean")  # attention rollout
>>> r.rollout.shape, r.attention.shape, r.aggregate
((6, 6, 6), (6, 1, 6, 6), 'mean')

JSON answers come back as `exformer.AttentionResult` / `exformer.GradientsResult`: the
response dict itself, with numpy properties and a notebook view, the same objects that
`exformer.Client` returns from a server. No TorchServe is imported; the handlers call the
same core.
"""

from typing import Any

from ..client.results import AttentionResult, GradientsResult
from ..contract.errors import RequestError
from ..contract.requests import AttentionRequest, GradientsRequest, Request
from . import attention, dispatch
from .checks import R, parse_request
from .responses import GradientsAnswer, details_response


def _requests(model, model_class: type[R], request, fields: dict) -> tuple[list[R], bool]:
    """(validated requests, whether one was given): a text, a dict, a request model, or a list."""
    one = not isinstance(request, list)
    out: list[R] = []
    for item in [request] if one else request:
        if isinstance(item, str):
            item = {"text": item}
        if isinstance(item, Request):
            item = item.model_dump(by_alias=True, exclude_unset=True)
        parsed = parse_request(model, model_class, {**item, **fields})
        if isinstance(parsed, RequestError):
            raise parsed
        out.append(parsed)
    return out, one


def explain_attention(model, request: Any, **fields) -> AttentionResult | list[AttentionResult]:
    """Attention of one request (a text, a dict of the contract's fields, an AttentionRequest)
    or a list of them; `fields` apply to each. Raises RequestError naming a bad field."""
    requests, one = _requests(model, AttentionRequest, request, fields)
    answers = [AttentionResult(attention.attention_response(model, r)) for r in requests]
    return answers[0] if one else answers


def explain_gradients(model, request: Any, **fields) -> GradientsResult | dict | list:
    """Integrated and intermediate gradients of one request or a list (computed together, as
    in a TorchServe batch). Answers as the server does, decoded: format "json" a
    GradientsResult (the summary dict; tensors asked for in `return` as numpy arrays), "npz"
    a dict of numpy arrays with the summary under "summary", "torch-gzip" the old server's
    dict of tensors; an empty request, the model block."""
    requests, one = _requests(model, GradientsRequest, request, fields)
    results = iter(dispatch.explain_batch(model, [r for r in requests if not r.details_only]))
    answers = []
    for r in requests:
        result = details_response(model) if r.details_only else next(results)
        if isinstance(result, RequestError):
            raise result
        answers.append(result if r.details_only else _decoded(result))
    return answers[0] if one else answers


def _decoded(result: GradientsAnswer | dict) -> GradientsResult | dict:
    if isinstance(result, dict):  # a forward-only method's answer, or a dry run's estimate
        return GradientsResult(result)
    fmt = result.request.format
    if fmt == "json":
        return GradientsResult(result.to_json())
    tensors = result.tensors()
    if fmt == "torch-gzip":
        return tensors
    arrays = {name: value.numpy() for name, value in tensors.items()}
    arrays.update({name: value.numpy() for name, value in result.summary_arrays().items()})
    return {**arrays, "summary": result.summary}


__all__ = ["explain_attention", "explain_gradients"]
