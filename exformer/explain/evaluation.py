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
from ..core.evaluate import evaluate
from ..core.prompts import Prompt
from ..core.tokens import Encoded
from ..core.versions import ClassifierScorer, ContinuationScorer, classifier_inputs
from .ablations import units_of, version_ids
from .responses import checked


def evaluation_units(request, prompt: Prompt, tokens: list[dict], kind: str) -> list[dict]:
    """The prompt's units of `kind` (token, word, sentence, source), as the forward-only methods'
    (`ablations.units_of`), whatever the request's own method leaves out."""
    if kind == "source" and request.sources is None:
        raise RequestError("evaluate.unit", '"source" needs "sources"')
    return units_of(request.model_copy(update={"unit": kind}), prompt, tokens)


def continuation_scorer(loaded, request, prompt: Prompt, units: list[dict], targets: list[int],
                        score: str) -> ContinuationScorer:
    """F [versions, n_t + 1] after versions of the prompt without sets of `units` (removed or
    replaced by the baseline token as `request.ablation` says), as occlusion's."""
    whole = tuple(prompt.ids)

    def ids_of(removed: frozenset[int]) -> tuple[int, ...]:
        return whole if not removed else version_ids(loaded, request, prompt, units, sorted(removed))

    return ContinuationScorer(loaded, ids_of, targets, score)


def evaluate_continuation(loaded, request, prompt: Prompt, units: list[dict], targets: list[int],
                          attributions: np.ndarray, options: Evaluate, unit: str, score: str) -> dict:
    """The `evaluation` block of a continuation's answer; `attributions` [n_t + 1, units]: each
    target token's row, then the whole continuation's."""
    scorer = continuation_scorer(loaded, request, prompt, units, targets, score)
    result = evaluate(attributions, scorer, options.steps, options.random_orders, options.seed, options.top_fraction)
    ablation = request.ablation
    return evaluation_block(result, options, [*range(len(targets)), None], unit=unit, ablation=ablation,
                            baseline=request.baseline if ablation == "baseline" else None, score=score,
                            forwards=scorer.forwards)


def evaluate_classifier(loaded, encoded: Encoded, text: str, text_pair: str | None, units: list[dict], target: int,
                        attributions: np.ndarray, options: Evaluate, unit: str, score: str,
                        ablation: str = "remove", baseline: str | None = None, dtype: str = "float32") -> dict:
    """The `evaluation` block of a classifier's answer; `attributions` [1, units] (or [units])."""
    inputs_of = classifier_inputs(loaded, encoded, text, text_pair, units, ablation, baseline)
    scorer = ClassifierScorer(loaded, inputs_of, target, score, dtype)
    result = evaluate(np.reshape(attributions, (1, -1)), scorer, options.steps, options.random_orders, options.seed,
                      options.top_fraction)
    return evaluation_block(result, options, [target], unit=unit, ablation=ablation,
                            baseline=baseline if ablation == "baseline" else None, score=score,
                            forwards=scorer.forwards)


def evaluation_block(result: dict, options: Evaluate, targets: list, **fields) -> dict:
    """core.evaluate's result as the contract's Evaluation (checked): `targets` names each row."""
    rows = [{"target": target, **row} for target, row in zip(targets, result["rows"])]
    block = {**{k: v for k, v in result.items() if k != "rows"}, "steps": options.steps,
             "top_fraction": options.top_fraction, "rows": rows, **fields}
    return checked(Evaluation, block)


__all__ = ["evaluation_units", "continuation_scorer", "evaluate_continuation", "evaluate_classifier", "evaluation_block"]
