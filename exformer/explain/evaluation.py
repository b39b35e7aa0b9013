"""`evaluate` of an explanation → the contract's `Evaluation` block: the algorithm
(exformer.core.evaluate) on the scorers of exformer.core.versions, with a continuation's
prompt versions made as the forward-only methods make theirs (`ablations.version_ids`).

The explanation reaches it as attributions [rows, units] over the units it is evaluated on
(`core.evaluate.unit_attributions` sums token values per unit): a continuation's rows are its
target tokens, then the whole continuation; a classifier's one row is its target class.
"""

import numpy as np

from ..contract.errors import RequestError
from ..contract.evaluation import Evaluate, Evaluation
from ..contract.vocabulary import FORWARD_ATTRIBUTIONS
from ..core.evaluate import evaluate, unit_attributions, versions_bound
from ..core.loading import LoadedModel
from ..core.prompts import Prompt
from ..core.tokens import Encoded, TokenRow, encode
from ..core.units import Unit
from ..core.versions import ClassifierScorer, ContinuationScorer, classifier_inputs, classifier_units
from .ablations import units_of, version_ids
from .responses import checked


def evaluation_units(request, prompt: Prompt, tokens: list[TokenRow], kind: str) -> list[Unit]:
    """The prompt's units of `kind` (token, word, sentence, source), as the forward-only methods'
    (`ablations.units_of`), whatever the request's own method leaves out."""
    if kind == "source" and request.sources is None:
        raise RequestError("evaluate.unit", '"source" needs "sources"')
    return units_of(request.model_copy(update={"unit": kind}), prompt, tokens)


def continuation_scorer(
    loaded: LoadedModel, request, prompt: Prompt, units: list[Unit], targets: list[int], score: str
) -> ContinuationScorer:
    """F [versions, n_t + 1] after versions of the prompt without sets of `units` (removed or
    replaced by the baseline token as `request.ablation` says), as occlusion's."""
    whole = tuple(prompt.ids)

    def ids_of(removed: frozenset[int]) -> tuple[int, ...]:
        return whole if not removed else version_ids(loaded, request, prompt, units, sorted(removed))

    return ContinuationScorer(loaded, ids_of, targets, score)


def evaluate_continuation(
    loaded: LoadedModel,
    request,
    prompt: Prompt,
    units: list[Unit],
    targets: list[int],
    attributions: np.ndarray,
    options: Evaluate,
    unit: str,
    score: str,
    whole_only: bool = False,
) -> dict:
    """The `evaluation` block of a continuation's answer; `attributions` [n_t + 1, units]: each
    target token's row, then the whole continuation's (`whole_only`: [1, units], its row alone)."""
    scorer = continuation_scorer(loaded, request, prompt, units, targets, score)
    scored = (lambda versions: scorer(versions)[:, -1:]) if whole_only else scorer  # the whole answer's column
    result = evaluate(attributions, scored, options.steps, options.random_orders, options.seed, options.top_fraction)
    ablation = request.ablation
    return evaluation_block(
        result,
        options,
        [None] if whole_only else [*range(len(targets)), None],
        unit=unit,
        ablation=ablation,
        baseline=request.baseline if ablation == "baseline" else None,
        score=score,
        forwards=scorer.forwards,
    )


def evaluate_classifier(
    loaded: LoadedModel,
    encoded: Encoded,
    text: str,
    text_pair: str | None,
    units: list[Unit],
    target: int,
    attributions: np.ndarray,
    options: Evaluate,
    unit: str,
    score: str,
    ablation: str = "remove",
    baseline: str | None = None,
    dtype: str = "float32",
) -> dict:
    """The `evaluation` block of a classifier's answer; `attributions` [1, units] (or [units])."""
    inputs_of = classifier_inputs(loaded, encoded, text, text_pair, units, ablation, baseline)
    scorer = ClassifierScorer(loaded, inputs_of, target, score, dtype)
    result = evaluate(
        np.reshape(attributions, (1, -1)),
        scorer,
        options.steps,
        options.random_orders,
        options.seed,
        options.top_fraction,
    )
    return evaluation_block(
        result,
        options,
        [target],
        unit=unit,
        ablation=ablation,
        baseline=baseline if ablation == "baseline" else None,
        score=score,
        forwards=scorer.forwards,
    )


def evaluation_block(result: dict, options: Evaluate, targets: list, **fields) -> dict:
    """core.evaluate's result as the contract's Evaluation (checked): `targets` names each row."""
    rows = [{"target": target, **row} for target, row in zip(targets, result["rows"])]
    block = {
        **{k: v for k, v in result.items() if k != "rows"},
        "steps": options.steps,
        "top_fraction": options.top_fraction,
        "rows": rows,
        **fields,
    }
    return checked(Evaluation, block)


# --- an answer's evaluation (the dispatcher's entry) ----------------------------------------------


def evaluation_kind(request) -> str:
    """The unit an answer is evaluated on: `evaluate.unit`, else the method's own (tokens for a gradient method)."""
    if request.evaluate.unit is not None:
        return request.evaluate.unit
    return request.units if request.attribution in FORWARD_ATTRIBUTIONS else "token"


def check_size(loaded: LoadedModel, request, n_rows: int, n_units: int) -> int:
    """The most versions the evaluation scores; a 413 naming `evaluate` past the archive's
    max_ablations, before anything runs."""
    options, limit = request.evaluate, loaded.settings.max_ablations
    if n_units < 1:
        raise RequestError("evaluate.unit", "the input has no such unit to remove")
    bound = min(
        versions_bound(n_rows, n_units, options.steps, options.random_orders, options.top_fraction),
        2 ** min(n_units, 62),
    )  # distinct removal sets: at most every subset of the units
    if bound > limit:
        raise RequestError(
            "evaluate",
            f"would score up to {bound} versions of the input ({n_rows} rows x "
            f"{options.random_orders} random orders x {options.steps} steps over {n_units} "
            f"units), over this archive's max_ablations ({limit}); ask fewer steps or "
            "random_orders, or a coarser unit",
            code=413,
        )
    return bound


def continuation_evaluation(loaded: LoadedModel, method, plan, answer) -> dict:
    """The `evaluation` of a continuation's answer (a gradient method's GradientsAnswer or a
    forward-only method's dict), on the units `evaluation_kind` names."""
    request, prompt, targets = plan.request, plan.prompt, plan.targets
    kind = evaluation_kind(request)
    if request.attribution in FORWARD_ATTRIBUTIONS:
        units = plan.units
        rows = [[a["attribution"] for a in target["attributions"]] for target in answer["targets"]]
        rows.append([a["attribution"] for a in answer["continuation_attributions"]])
        attributions = np.array(rows, dtype=np.float64)  # [n_t + 1, units]
        score = answer["score"]
    else:
        units = evaluation_units(request, prompt, plan.tokens, kind)
        values = method.token_values(answer.path)[:, : len(prompt)].double().numpy()  # [rows, P]
        whole = values.sum(0, keepdims=True)
        attributions = unit_attributions(units, whole if request.rows == "whole" else np.concatenate([values, whole]))
        score = request.score
    check_size(loaded, request, len(attributions), len(units))
    return evaluate_continuation(
        loaded,
        request,
        prompt,
        units,
        targets,
        attributions,
        request.evaluate,
        kind,
        score,
        whole_only=request.attribution not in FORWARD_ATTRIBUTIONS and request.rows == "whole",
    )


def classifier_evaluation(loaded: LoadedModel, method, request, answer) -> dict:
    """The `evaluation` of a single-target gradient answer (a class, or a next token)."""
    encoded = encode(loaded, request.text, request.text_pair)
    kind = evaluation_kind(request)
    units = classifier_units(loaded, encoded, request.text, request.text_pair, kind)
    check_size(loaded, request, 1, len(units))
    values = method.token_values(answer.path).double().numpy()  # [T]
    attributions = unit_attributions(units, values[None])
    target = answer.summary["target"]["index"]
    return evaluate_classifier(
        loaded,
        encoded,
        request.text,
        request.text_pair,
        units,
        target,
        attributions,
        request.evaluate,
        kind,
        request.score,
        dtype=loaded.dtype_for(request.dtype),
    )


__all__ = [
    "evaluation_units",
    "continuation_scorer",
    "evaluate_continuation",
    "evaluate_classifier",
    "evaluation_block",
    "evaluation_kind",
    "check_size",
    "continuation_evaluation",
    "classifier_evaluation",
]
