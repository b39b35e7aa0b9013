"""Gradients requests → answers: one dispatcher over the registered methods (exformer.explain.
methods), as transformers' pipelines are one function per request.

A continuation request is planned once (exformer.explain.plan), estimated from that plan (a dry
run answers with the estimate; a request over the archive's time limit is refused with it),
completed (its targets generated where asked) and run by its method; this worker's speed learns
from how long it took. Single-target requests (a class, a next token) of one batch run together
per method, so their path points share chunks.
"""

import time

from ..contract.errors import RequestError
from ..contract.requests import GradientsRequest
from ..core.loading import LoadedModel
from . import cost, evaluation
from .methods import METHODS
from .plan import complete, generation_room, plan
from .responses import with_evaluation


def explain_batch(loaded: LoadedModel, requests: list[GradientsRequest]) -> list:
    """One answer (a GradientsAnswer, a checked dict) or RequestError per request."""
    if any(request.details_only for request in requests):
        raise ValueError("a details request (no text) has no gradients; answer it with loaded.details()")
    out: list = [None] * len(requests)
    single: dict[str, list[int]] = {}
    for k, request in enumerate(requests):
        if request.generation:
            out[k] = _answered(explain_continuation, loaded, request)
        else:
            single.setdefault(request.attribution, []).append(k)
    for name, ks in single.items():
        for k, answer in zip(ks, METHODS[name].run_single(loaded, [requests[k] for k in ks])):
            out[k] = (
                answer
                if requests[k].evaluate is None
                else _answered(_evaluated, loaded, METHODS[name], requests[k], answer)
            )
    return out


def _evaluated(loaded: LoadedModel, method, request, answer):
    """A single-target answer with its `evaluation` (exformer.explain.evaluation)."""
    if isinstance(answer, RequestError):
        return answer
    return with_evaluation(answer, evaluation.classifier_evaluation(loaded, method, request, answer))


def explain_continuation(loaded: LoadedModel, request: GradientsRequest):
    """One continuation/generate request, answered (RequestError naming the field if it cannot be)."""
    method = METHODS[request.attribution]
    planned = plan(loaded, request)
    if request.dry_run:
        return cost.cost_estimate(loaded, planned)
    if request.generate is not None:
        generation_room(loaded, planned)
        cost.refuse_over_limit(loaded, planned)  # before generating, for the most it may generate
    complete(loaded, planned)
    estimate = cost.refuse_over_limit(loaded, planned)
    if request.evaluate is not None:  # its versions bounded before anything runs
        units = cost.evaluation_units_of(loaded, planned)
        evaluation.check_size(loaded, request, planned.n_targets + 1, len(units))
    started = time.perf_counter()
    answer = method.run(loaded, planned)
    if method.least_points(request) is None:  # an adaptive rule ran a count no estimate knew
        loaded.speed.learn(method.speed, estimate["calibrated_seconds"], time.perf_counter() - started)
    if request.evaluate is not None:
        answer = with_evaluation(answer, evaluation.continuation_evaluation(loaded, method, planned, answer))
    return answer


def _answered(explain, *args):
    try:
        return explain(*args)
    except RequestError as error:
        return error


__all__ = ["explain_batch", "explain_continuation"]
