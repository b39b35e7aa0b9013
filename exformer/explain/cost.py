"""Cost before running: a continuation request's forwards, backwards, tokens, estimated seconds
and peak memory on this worker (`dry_run: true` answers with them; a request estimated over the
archive's `max_estimated_seconds` is refused with them and the cheaper requests named). Each
method counts its own figures from the request's plan (exformer.explain.methods, from
exformer.core.cost), in closed form: an estimate never builds the work it estimates, so a dry
run answers at once whatever it is asked.
"""

import dataclasses

from ..contract.errors import RequestError
from ..contract.requests import GradientsRequest
from ..contract.responses import CostEstimate
from ..core.loading import LoadedModel
from ..core.units import Unit
from . import ablations, evaluation
from .methods import METHODS
from .plan import Plan
from .responses import checked
from .rows import token_rows

FORWARD_ONLY = tuple(name for name, method in METHODS.items() if method.speed == "forward_only")


def estimate(loaded: LoadedModel, plan: Plan, points: int | None = None) -> dict:
    """The figures of running the plan (integrated gradients: at `points` path points, by default
    the most the request may use), in seconds as this worker's recent requests ran
    (`estimated_seconds`) and at its best (`best_seconds`)."""
    figures = _corrected(loaded, METHODS[plan.request.attribution].cost(loaded, plan, points))
    if plan.request.evaluate is None:
        return figures
    measured = _corrected(loaded, _evaluation_cost(loaded, plan))  # its forwards come after the method's
    for name in ("forwards", "positions", "calibrated_seconds", "estimated_seconds", "best_seconds"):
        figures[name] += measured[name]
    figures["estimated_peak_bytes"] = max(figures["estimated_peak_bytes"], measured["estimated_peak_bytes"])
    return figures


def _corrected(loaded: LoadedModel, figures: dict) -> dict:
    speed, kind, seconds = loaded.speed, figures.pop("kind"), figures["calibrated_seconds"]
    return {
        **figures,
        "estimated_seconds": seconds * speed.correction(kind),
        "best_seconds": seconds * speed.correction(kind, optimistic=True),
        "measured_from": speed.source(kind),
    }


def evaluation_units_of(loaded: LoadedModel, plan: Plan) -> list[Unit]:
    """The units the answer's `evaluate` removes: the method's own (forward-only), else the kind asked."""
    request = plan.request
    if request.attribution in FORWARD_ONLY:
        return METHODS[request.attribution].units(loaded, plan)
    rows = token_rows(loaded, plan.prompt, [], [], "")
    return evaluation.evaluation_units(request, plan.prompt, rows, evaluation.evaluation_kind(request))


def _evaluation_cost(loaded: LoadedModel, plan: Plan) -> dict:
    """`evaluate`'s versions of the prompt, at most core.evaluate.versions_bound of them."""
    units = evaluation_units_of(loaded, plan)
    bound = evaluation.check_size(loaded, plan.request, plan.n_targets + 1, len(units))
    return ablations.forward_cost_of(loaded, plan, units, bound)


def cheaper_requests(request) -> list[str]:
    """How a user would say each cheaper variant of a request (a stopped request's hint)."""
    if not isinstance(request, GradientsRequest):
        return []
    return [said for said, _ in _alternatives(request)]


def _alternatives(request: GradientsRequest) -> list[tuple[str, dict]]:
    """Cheaper variants of a request: (how a user says it, the fields that change): the method's
    own, then other methods and coarser units."""
    fields = request.model_dump(by_alias=True, exclude_unset=True)
    forward = {
        k: v for k, v in fields.items() if k in ("text", "messages", "continuation", "generate", "sources", "seed")
    }
    unit = "source" if request.sources is not None else "sentence"
    options = METHODS[request.attribution].cheaper(request, fields)
    if request.attribution not in FORWARD_ONLY and request.generation:  # forward-only methods explain continuations
        options.append((f'"attribution": "occlusion" (unit "{unit}")', forward | {"attribution": "occlusion"}))
        options.append((f'"attribution": "contextcite" (unit "{unit}")', forward | {"attribution": "contextcite"}))
    elif request.attribution == "contextcite":
        options.append(
            (
                f'"attribution": "occlusion" (unit "{request.units}")',
                forward | {"attribution": "occlusion", "unit": request.units},
            )
        )
    if request.attribution in FORWARD_ONLY and request.units in ("token", "word"):
        options.append((f'"unit": "{unit}"', fields | {"unit": unit}))
    if request.generate is not None and request.generate.max_new_tokens > 1:
        half = request.generate.max_new_tokens // 2
        options.append((f'"generate": {{"max_new_tokens": {half}}}', fields | {"generate": {"max_new_tokens": half}}))
    return options


def cost_estimate(loaded: LoadedModel, plan: Plan) -> dict:
    """The contract's CostEstimate, cheaper requests included."""
    request = plan.request
    figures = estimate(loaded, plan)
    figures.pop("calibrated_seconds")
    best = figures.pop("best_seconds")
    limit = loaded.settings.max_estimated_seconds
    cheaper = []
    for said, fields in _alternatives(request):
        other = type(request).model_validate({**fields, "dry_run": False})
        try:
            seconds = estimate(loaded, dataclasses.replace(plan, request=other, units=None))["estimated_seconds"]
        except RequestError:  # over one of the archive's limits itself
            continue
        if seconds < figures["estimated_seconds"]:
            cheaper.append(f"{said}: ~{seconds:.1f} s")
    return checked(
        CostEstimate,
        {
            "attribution": request.attribution,
            "n_tokens_prompt": len(plan.prompt),
            "n_tokens_continuation": plan.n_targets,
            **figures,
            "max_estimated_seconds": limit,
            "within_limits": best <= limit,
            "upper_bound": request.generate is not None
            or request.n_steps == "auto"
            or request.attribution in FORWARD_ONLY,
            "cheaper": cheaper,  # forward-only: every ablated prompt counted as long as the whole, none alike
        },
    )


def refuse_over_limit(loaded: LoadedModel, plan: Plan) -> dict:
    """The request's figures; a 413 carrying them (and the cheaper requests) when its estimated
    seconds pass the archive's max_estimated_seconds (n_steps "auto": at its first rule, the
    least it runs; its max_n_steps bounds the rest, and a dry run shows that upper bound)."""
    request = plan.request
    method = METHODS[request.attribution]
    figures = estimate(loaded, plan, points=method.least_points(request))
    limit = loaded.settings.max_estimated_seconds
    if figures["best_seconds"] <= limit:  # refused only if it is over even at this worker's best speed
        return figures
    full = cost_estimate(loaded, plan)
    field = {"integrated_gradients": "n_steps", "contextcite": "n_ablations", "occlusion": "unit"}.get(
        request.attribution
    ) or ("continuation" if request.continuation is not None else "generate")
    options = "; ".join(full["cheaper"]) or "a shorter prompt or continuation"
    raise RequestError(
        field,
        f"this request would take ~{figures['best_seconds']:.0f} s or more on this worker, over "
        f"the archive's max_estimated_seconds ({limit:.0f}); cheaper: {options}",
        code=413,
        estimate=full,
    )
