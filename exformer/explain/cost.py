"""Cost before running: a continuation request's forwards, backwards, tokens, estimated seconds
and peak memory on this worker (`dry_run: true` answers with them; a request estimated over the
archive's `max_estimated_seconds` is refused with them and the cheaper requests named). The
figures: exformer.core.cost, from counts alone (closed form): an estimate never builds the work
it estimates, so a dry run answers at once whatever it is asked.
"""

from ..contract.errors import RequestError
from ..contract.requests import GradientsRequest
from ..contract.responses import CostEstimate
from ..contract.vocabulary import DEFAULT_ABLATIONS, KRONROD_POINTS
from ..core.ablation import default_rows
from ..core.cost import forward_cost, gradients_cost
from ..core.prompts import Prompt
from . import ablations
from .responses import checked
from .rows import token_rows


def estimate(loaded, request, prompt: Prompt, n_targets: int, points: int | None = None) -> dict:
    """The figures of running `request` on `prompt` with `n_targets` target tokens (integrated
    gradients: at `points` path points, by default the most the request may use), in seconds
    as this worker's recent requests ran (`estimated_seconds`) and at its best (`best_seconds`)."""
    if request.attribution == "integrated_gradients":
        points = points or request.most_steps(loaded.settings)
        figures = gradients_cost(loaded, len(prompt), n_targets, points, loaded.settings.internal_batch_size)
    else:
        units = ablations.units_of(request, prompt, token_rows(loaded, prompt, [], [], ""))
        # Upper bounds: every version as long as the prompt (a removed unit shortens it), sharing
        # the tokens before the first unit, none of the masks alike (identical prompts run once).
        check_ablations(loaded, request, len(units))
        first = min((i for unit in units for i in unit["tokens"]), default=len(prompt) - 1)
        shared = min(first, len(prompt) - 1)
        rows = default_rows(len(prompt) + n_targets - shared, loaded.device)
        figures = forward_cost(loaded, n_prompts(request, len(units)), len(prompt), shared, n_targets, rows)
    speed, kind, seconds = loaded.speed, figures.pop("kind"), figures["calibrated_seconds"]
    return {**figures, "estimated_seconds": seconds * speed.correction(kind),
            "best_seconds": seconds * speed.correction(kind, optimistic=True), "measured_from": speed.source(kind)}


def n_prompts(request, n_units: int) -> int:
    """The most distinct prompts a forward-only request runs: the whole prompt and one per
    ablation (contextcite: at most the 2^units distinct masks)."""
    if request.attribution == "occlusion":
        return n_units + 1
    masks = (request.n_ablations or DEFAULT_ABLATIONS) + ablations.n_holdout(request)
    return min(masks + 1, 2 ** min(n_units, 62))


def check_ablations(loaded, request, n_units: int) -> None:
    """Occlusion runs one prompt per unit: refused (413, naming `unit`) past the archive's
    max_ablations, before anything runs (contextcite's counts are checked with the request)."""
    limit = loaded.settings.max_ablations
    if request.attribution == "occlusion" and n_units > limit:
        raise RequestError("unit", f'"{request.units}" makes {n_units} units, one ablated prompt each, over this '
                                   f"archive's max_ablations ({limit}); choose a coarser unit (sentence, source)",
                           code=413)


def cheaper_requests(request) -> list[str]:
    """How a user would say each cheaper variant of a request (a stopped request's hint)."""
    if not isinstance(request, GradientsRequest):
        return []
    return [said for said, _ in _alternatives(request)]


def _alternatives(request) -> list[tuple[str, dict]]:
    """Cheaper variants of a request: (how a user says it, the fields that change)."""
    fields = request.model_dump(by_alias=True, exclude_unset=True)
    forward = {k: v for k, v in fields.items() if k in ("text", "messages", "continuation", "generate", "sources", "seed")}
    unit = "source" if request.sources is not None else "sentence"
    options = []
    if request.attribution == "integrated_gradients":
        if request.n_steps == "auto" or request.n_steps > 16:
            options.append(('"n_steps": 16', {k: v for k, v in fields.items() if k not in ("tolerance", "max_n_steps")}
                            | {"n_steps": 16, "method": "gausslegendre"}))
        if request.generation:  # the forward-only methods explain continuations
            options.append((f'"attribution": "occlusion" (unit "{unit}")', forward | {"attribution": "occlusion"}))
            options.append((f'"attribution": "contextcite" (unit "{unit}")', forward | {"attribution": "contextcite"}))
    elif request.attribution == "contextcite":
        n = request.n_ablations or DEFAULT_ABLATIONS
        if n > 16:
            options.append((f'"n_ablations": {n // 2}', fields | {"n_ablations": n // 2}))
        options.append((f'"attribution": "occlusion" (unit "{request.units}")',
                        forward | {"attribution": "occlusion", "unit": request.units}))
    if request.attribution != "integrated_gradients" and request.units in ("token", "word"):
        options.append((f'"unit": "{unit}"', fields | {"unit": unit}))
    if request.generate is not None and request.generate.max_new_tokens > 1:
        half = request.generate.max_new_tokens // 2
        options.append((f'"generate": {{"max_new_tokens": {half}}}', fields | {"generate": {"max_new_tokens": half}}))
    return options


def cost_estimate(loaded, request, prompt: Prompt, n_targets: int) -> dict:
    """The contract's CostEstimate, cheaper requests included."""
    figures = estimate(loaded, request, prompt, n_targets)
    figures.pop("calibrated_seconds")
    best = figures.pop("best_seconds")
    limit = loaded.settings.max_estimated_seconds
    cheaper = []
    for said, fields in _alternatives(request):
        other = type(request).model_validate({**fields, "dry_run": False})
        try:
            seconds = estimate(loaded, other, prompt, n_targets)["estimated_seconds"]
        except RequestError:  # over one of the archive's limits itself
            continue
        if seconds < figures["estimated_seconds"]:
            cheaper.append(f"{said}: ~{seconds:.1f} s")
    return checked(CostEstimate, {
        "attribution": request.attribution, "n_tokens_prompt": len(prompt), "n_tokens_continuation": n_targets,
        **figures, "max_estimated_seconds": limit, "within_limits": best <= limit,
        "upper_bound": request.generate is not None or request.n_steps == "auto"
                       or request.attribution != "integrated_gradients",  # forward-only: identical prompts run once
        "cheaper": cheaper,
    })


def dry_run(loaded, request, prompt: Prompt) -> dict:
    """`dry_run: true`: the estimate, nothing run (generate: for max_new_tokens targets)."""
    return cost_estimate(loaded, request, prompt, _n_targets(loaded, request))


def _n_targets(loaded, request) -> int:
    if request.continuation is not None:
        return len(loaded.tokenizer(request.continuation, add_special_tokens=False)["input_ids"])
    return request.generate.max_new_tokens


def refuse_over_limit(loaded, request, prompt: Prompt, n_targets: int) -> dict:
    """The request's figures; a 413 carrying them (and the cheaper requests) when its estimated
    seconds pass the archive's max_estimated_seconds (n_steps "auto": at its first rule, the
    least it runs; its max_n_steps bounds the rest, and a dry run shows that upper bound)."""
    first = KRONROD_POINTS if request.attribution == "integrated_gradients" and request.n_steps == "auto" else None
    figures = estimate(loaded, request, prompt, n_targets, points=first)
    limit = loaded.settings.max_estimated_seconds
    if figures["best_seconds"] <= limit:  # refused only if it is over even at this worker's best speed
        return figures
    full = cost_estimate(loaded, request, prompt, n_targets)
    field = {"integrated_gradients": "n_steps", "contextcite": "n_ablations", "occlusion": "unit"}[request.attribution]
    options = "; ".join(full["cheaper"]) or "a shorter prompt or continuation"
    raise RequestError(field, f"this request would take ~{figures['best_seconds']:.0f} s or more on this worker, over "
                              f"the archive's max_estimated_seconds ({limit:.0f}); cheaper: {options}",
                       code=413, estimate=full)
