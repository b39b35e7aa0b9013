"""`evaluate`: an explanation's deletion and insertion curves, their areas, ERASER's two numbers
and the same over random orders, measured on the input itself (exformer.core.evaluate).

Oracles: hand-computed values of a toy linear scorer (F = the kept units' weights), and a
direct re-run of the real model on each ablated input (the sentiment classifier: the ablated
text tokenized and run plainly, softmax; SmolLM2: the ablated conversation through the chat
template, log-probabilities of each target) within 1e-4.
"""

import doctest

import numpy as np
import pytest
import torch

import exformer.contract.evaluation
import exformer.core.evaluate
from exformer import GradientsRequest, load_model
from exformer.contract.errors import DeadlineError, RequestError
from exformer.contract.evaluation import Evaluate
from exformer.core.deadline import deadline
from exformer.core.evaluate import (
    evaluate,
    explanation_orders,
    random_permutations,
    step_counts,
    top_count,
    versions_bound,
)
from exformer.core.prompts import prompt_of
from exformer.core.tokens import encode
from exformer.core.units import ablate_text
from exformer.core.versions import classifier_units
from exformer.explain import parse_request
from exformer.explain.evaluation import evaluate_classifier, evaluate_continuation, evaluation_units
from exformer.explain.rows import token_rows
from support.rag import ANSWER, RAG, SOURCES
from tiny_models import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")

SENTIMENT, SMOLLM2 = ROOT / "build" / "models" / "sentiment", ROOT / "build" / "models" / "smollm2"
REVIEW = "The film was slow and the acting wooden, but the ending was wonderful. I left smiling."


class Linear:
    """F = the sum of the kept units' weights (one row per weight vector); counts its calls."""

    def __init__(self, weights: np.ndarray):
        self.weights = np.atleast_2d(weights)  # [rows, units]
        self.calls: list[list[frozenset]] = []

    def __call__(self, removed: list[frozenset]) -> np.ndarray:
        self.calls.append(removed)
        kept = np.array([[u not in r for u in range(self.weights.shape[1])] for r in removed], dtype=float)
        return kept @ self.weights.T  # [versions, rows]


# --- the algorithm, on a toy scorer -------------------------------------------------------------


def test_the_docstrings_examples_hold():
    for module in (exformer.core.evaluate, exformer.contract.evaluation):
        assert doctest.testmod(module).failed == 0


def test_curves_areas_and_eraser_equal_the_hand_computed_values():
    w = np.array([0.5, 4.0, -1.0, 2.0, 1.0])  # order 1, 3, 4, 0, 2; F(x) = 6.5
    result = evaluate(w[None], Linear(w), steps=10, random_orders=0, top_fraction=0.2)
    assert result["counts"] == [0, 1, 2, 3, 4, 5] and result["fractions"] == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert result["top_k"] == 1 and result["n_units"] == 5
    row = result["rows"][0]
    assert row["deletion"] == [6.5, 2.5, 0.5, -0.5, -1.0, 0.0]
    assert row["insertion"] == [0.0, 4.0, 6.0, 7.0, 7.5, 6.5]
    assert row["deletion_aopc"] == pytest.approx((4 + 6 + 7 + 7.5 + 6.5) / 5)
    assert row["insertion_aopc"] == pytest.approx((4 + 6 + 7 + 7.5 + 6.5) / 5)
    assert row["comprehensiveness"] == 6.5 - 2.5 and row["sufficiency"] == 6.5 - 4.0
    assert row["random"] is None and row["win_rate"] == {"deletion": None, "insertion": None}


def test_steps_are_unit_counts_rounded_and_deduplicated_from_none_to_all():
    assert step_counts(3, 10) == [0, 1, 2, 3]
    assert step_counts(20, 4) == [0, 5, 10, 15, 20]
    assert step_counts(7, 1) == [0, 7]
    assert [top_count(n, 0.2) for n in (1, 2, 3, 7, 8, 10)] == [1, 1, 1, 1, 2, 2]
    assert top_count(4, 1.0) == 4


def test_the_true_weights_win_against_every_random_order():
    w = np.array([3.0, -2.0, 0.5, 5.0, 1.0, -0.5, 2.5, 0.1])
    result = evaluate(w[None], Linear(w), steps=4, random_orders=30, seed=7)
    row = result["rows"][0]
    assert row["win_rate"] == {"deletion": 1.0, "insertion": 1.0}
    assert row["deletion_aopc"] > row["random"]["deletion_aopc"]["mean"]
    assert row["comprehensiveness"] >= row["random"]["comprehensiveness"]["mean"]
    assert row["sufficiency"] <= row["random"]["sufficiency"]["mean"]
    # the reverse order loses to every random order
    worst = evaluate(-w[None], Linear(w), steps=4, random_orders=30, seed=7)["rows"][0]
    assert worst["win_rate"] == {"deletion": 0.0, "insertion": 0.0}


def test_ties_with_a_random_order_count_half():
    w = np.array([2.0, 1.0])  # two units: the random orders are the explanation's or its reverse
    row = evaluate(w[None], Linear(w), steps=2, random_orders=20, seed=3)["rows"][0]
    same = sum(list(o) == [0, 1] for o in random_permutations(2, 20, 3))
    assert row["win_rate"]["deletion"] == pytest.approx((20 - same + 0.5 * same) / 20)


def test_the_random_curves_come_with_their_spread_at_every_point():
    w = np.array([3.0, -2.0, 0.5, 5.0, 1.0])
    result = evaluate(w[None], Linear(w), steps=5, random_orders=7, seed=4)
    row, counts = result["rows"][0], result["counts"]
    full = w.sum()
    deletion = [[full - w[o[:j]].sum() for j in counts] for o in random_permutations(5, 7, 4)]
    insertion = [[w[o[:j]].sum() for j in counts] for o in random_permutations(5, 7, 4)]
    np.testing.assert_allclose(row["random"]["deletion"], np.mean(deletion, 0))
    np.testing.assert_allclose(row["random"]["deletion_std"], np.std(deletion, 0), atol=1e-12)
    np.testing.assert_allclose(row["random"]["insertion_std"], np.std(insertion, 0), atol=1e-12)
    assert row["random"]["deletion_std"][0] == row["random"]["deletion_std"][-1] == 0  # all and none: no spread


def test_random_orders_are_reproducible_by_seed_and_differ_for_another():
    w = np.arange(10.0)[::-1]
    one, again, other = (evaluate(w[None], Linear(w), random_orders=5, seed=s)["rows"][0] for s in (1, 1, 2))
    assert one == again and one["random"] != other["random"]
    expected = [np.random.default_rng((1, k)).permutation(10) for k in range(5)]
    np.testing.assert_array_equal(random_permutations(10, 5, 1), expected)
    big = random_permutations(10, 3, 2**32 - 1)  # the largest seed, and order indices past it: no overflow
    assert big.shape == (3, 10) and all(sorted(o) == list(range(10)) for o in big)


def test_every_distinct_version_is_scored_once_in_one_call():
    w = np.array([0.5, 4.0, -1.0, 2.0, 1.0])
    scorer = Linear(np.stack([w, w, w]))
    result = evaluate(np.stack([w, w, -w]), scorer, steps=10, random_orders=0)
    assert len(scorer.calls) == 1
    sets = scorer.calls[0]
    assert len(sets) == len(set(sets)) == result["versions"]
    # one order: 6 deletion + 6 insertion sets sharing {} and all, ERASER's two among them; its reverse
    # shares {} and all, and its top-j sets are the first order's all-but-top-(5−j)
    assert result["versions"] == 10 == versions_bound(1, 5, 10, 0, 0.2) <= versions_bound(3, 5, 10, 0, 0.2)
    many = evaluate(np.random.default_rng(0).normal(size=(4, 9)), lambda r: np.zeros((len(r), 4)), 3, 5, 0, 0.3)
    assert many["versions"] <= versions_bound(4, 9, 3, 5, 0.3)
    assert {frozenset(), frozenset(range(5))} <= set(sets)
    rows = result["rows"]
    assert rows[0] == rows[1] and rows[2]["deletion"] != rows[0]["deletion"]


def test_rows_have_their_own_orders_and_share_the_random_ones():
    weights = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    result = evaluate(weights, Linear(weights), steps=3, random_orders=4)
    assert [r["deletion"] for r in result["rows"]] == [[6.0, 3.0, 1.0, 0.0], [6.0, 3.0, 1.0, 0.0]]
    np.testing.assert_array_equal(explanation_orders(weights), [[2, 1, 0], [0, 1, 2]])


def test_bad_attributions_and_options_are_refused():
    for bad in (np.zeros((1, 0)), np.array([[np.nan, 1.0]]), np.zeros(3)):
        with pytest.raises(ValueError):
            evaluate(bad, Linear(np.ones(2)))
    with pytest.raises(ValueError):
        evaluate(np.ones((1, 2)), Linear(np.ones(2)), top_fraction=0)


def test_the_evaluate_block_takes_its_defaults_and_refuses_out_of_range():
    assert Evaluate().model_dump() == {"unit": None, "steps": 10, "random_orders": 10, "seed": 0, "top_fraction": 0.2}
    for bad in (
        {"steps": 0},
        {"steps": 101},
        {"random_orders": -1},
        {"random_orders": 101},
        {"seed": 2**32},
        {"top_fraction": 0},
        {"top_fraction": 1.5},
        {"steps": 2.0},
        {"unit": "page"},
        {"orders": 3},
    ):
        with pytest.raises(ValueError):
            Evaluate.model_validate(bad)


# --- a classifier: the real sentiment model ----------------------------------------------------


@pytest.fixture(scope="module")
def sentiment():
    if not (SENTIMENT / "config.json").exists():
        pytest.skip("build/models/sentiment is made by bin/setup")
    return load_model(SENTIMENT)


def _probability(model, text: str, target: int, replace: dict | None = None) -> float:
    inputs = model.tokenizer(text, return_tensors="pt")
    if replace:
        for i, token in replace.items():
            inputs["input_ids"][0, i] = token
    with torch.no_grad():
        return float(model.model(**inputs).logits[0].double().softmax(-1)[target])


def _removed_text(text: str, units: list[dict], removed) -> str:
    return ablate_text(text, [(units[u]["start"], units[u]["end"]) for u in removed])


@pytest.mark.parametrize("unit", ["word", "token"])
def test_classifier_curves_equal_a_direct_rerun_of_the_model_on_each_ablated_text(sentiment, unit):
    encoded = encode(sentiment, REVIEW)
    units = classifier_units(sentiment, encoded, REVIEW, None, unit)
    attributions = np.random.default_rng(5).normal(size=len(units))
    options = Evaluate(steps=5, random_orders=3, seed=11, top_fraction=0.25)
    r = evaluate_classifier(sentiment, encoded, REVIEW, None, units, 1, attributions, options, unit, "probability")
    F = lambda removed: _probability(sentiment, _removed_text(REVIEW, units, removed), 1)  # noqa: E731
    row, n, k = r["rows"][0], len(units), r["top_k"]
    order = list(np.argsort(-attributions, kind="stable"))
    np.testing.assert_allclose(row["deletion"], [F(order[:j]) for j in r["counts"]], atol=1e-4)
    np.testing.assert_allclose(row["insertion"], [F(order[j:]) for j in r["counts"]], atol=1e-4)
    assert row["comprehensiveness"] == pytest.approx(F([]) - F(order[:k]), abs=1e-4)
    assert row["sufficiency"] == pytest.approx(F([]) - F(order[k:]), abs=1e-4)
    randoms = random_permutations(n, 3, 11)
    mean_deletion = np.mean([[F(list(o[:j])) for j in r["counts"]] for o in randoms], axis=0)
    np.testing.assert_allclose(row["random"]["deletion"], mean_deletion, atol=1e-4)
    assert r["unit"] == unit and r["rows"][0]["target"] == 1 and r["forwards"] <= r["versions"]
    assert r["counts"] == step_counts(n, 5) and r["fractions"][-1] == 1.0


def test_classifier_versions_by_the_baseline_token(sentiment):
    encoded = encode(sentiment, REVIEW)
    units = classifier_units(sentiment, encoded, REVIEW, None, "sentence")
    assert [u["text"] for u in units] == [
        "The film was slow and the acting wooden, but the ending was wonderful.",
        "I left smiling.",
    ]
    r = evaluate_classifier(
        sentiment,
        encoded,
        REVIEW,
        None,
        units,
        0,
        np.array([1.0, 0.0]),
        Evaluate(random_orders=0),
        "sentence",
        "probability",
        ablation="baseline",
        baseline="pad",
    )
    pad = sentiment.tokenizer.pad_token_id
    first = {i: pad for i in units[0]["tokens"]}
    everything = {i: pad for u in units for i in u["tokens"]}
    expected = [
        _probability(sentiment, REVIEW, 0),
        _probability(sentiment, REVIEW, 0, first),
        _probability(sentiment, REVIEW, 0, everything),
    ]
    np.testing.assert_allclose(r["rows"][0]["deletion"], expected, atol=1e-4)
    assert r["baseline"] == "pad" and r["ablation"] == "baseline"


def test_evaluation_versions_stop_at_the_deadline(sentiment):
    encoded = encode(sentiment, REVIEW)
    units = classifier_units(sentiment, encoded, REVIEW, None, "word")
    with deadline(0.0), pytest.raises(DeadlineError, match="evaluation versions"):
        evaluate_classifier(
            sentiment, encoded, REVIEW, None, units, 1, np.ones(len(units)), Evaluate(), "word", "probability"
        )


# --- a continuation: the real SmolLM2 ----------------------------------------------------------


@pytest.fixture(scope="module")
def lm():
    if not (SMOLLM2 / "config.json").exists():
        pytest.skip("build/models/smollm2 is made by bin/setup")
    return load_model(SMOLLM2)


def _direct_log_probs(lm, messages, targets) -> np.ndarray:
    ids = list(lm.tokenizer.apply_chat_template(messages, add_generation_prompt=True)["input_ids"])
    with torch.no_grad():
        logp = lm.model(torch.tensor([ids + targets])).logits[0].double().log_softmax(-1)
    return np.array([float(logp[len(ids) - 1 + t, y]) for t, y in enumerate(targets)])


def _continuation(lm, request):
    prompt = prompt_of(lm, request)
    encoded = lm.tokenizer(ANSWER, add_special_tokens=False, return_offsets_mapping=True)
    targets, offsets = list(encoded["input_ids"]), [tuple(o) for o in encoded["offset_mapping"]]
    return prompt, targets, token_rows(lm, prompt, targets, offsets, ANSWER)


@pytest.mark.parametrize("unit", ["source", "sentence"])
def test_continuation_curves_equal_a_direct_rerun_of_the_model_on_each_ablated_prompt(lm, unit):
    request = parse_request(lm, GradientsRequest, {"messages": RAG, "continuation": ANSWER, "sources": SOURCES})
    prompt, targets, tokens = _continuation(lm, request)
    units = evaluation_units(request, prompt, tokens, unit)  # an integrated-gradients request's, by evaluate.unit
    n_t, n = len(targets), len(units)
    two = np.random.default_rng(2).normal(size=(2, n))
    attributions = two[np.arange(n_t + 1) % 2]  # [n_t + 1, units]: two orders among the rows (fewer re-runs)
    options = Evaluate(steps=3, random_orders=2, seed=4)
    r = evaluate_continuation(lm, request, prompt, units, targets, attributions, options, unit, "log_probability")
    cache: dict = {}

    def F(removed) -> np.ndarray:  # [n_t + 1]: each target's log p, then the continuation's
        key = frozenset(int(u) for u in removed)
        if key not in cache:
            messages = [dict(m) for m in RAG]
            for where in {units[u]["where"] for u in key}:
                messages[where]["content"] = ablate_text(
                    RAG[where]["content"],
                    [(units[u]["start"], units[u]["end"]) for u in key if units[u]["where"] == where],
                )
            logp = _direct_log_probs(lm, messages, targets)
            cache[key] = np.append(logp, logp.sum())
        return cache[key]

    k = r["top_k"]
    for row_index, row in enumerate(r["rows"]):
        order = list(np.argsort(-attributions[row_index], kind="stable"))
        np.testing.assert_allclose(row["deletion"], [F(order[:j])[row_index] for j in r["counts"]], atol=1e-4)
        np.testing.assert_allclose(row["insertion"], [F(order[j:])[row_index] for j in r["counts"]], atol=1e-4)
        assert row["comprehensiveness"] == pytest.approx(F([])[row_index] - F(order[:k])[row_index], abs=1e-4)
        assert row["sufficiency"] == pytest.approx(F([])[row_index] - F(order[k:])[row_index], abs=1e-4)
    assert [row["target"] for row in r["rows"]] == [*range(n_t), None]
    assert r["unit"] == unit and r["n_units"] == n and r["forwards"] == r["versions"]


def test_continuation_units_by_evaluate_unit_and_source_needs_sources(lm):
    request = parse_request(lm, GradientsRequest, {"messages": RAG, "continuation": ANSWER})
    prompt, _, tokens = _continuation(lm, request)
    words = evaluation_units(request, prompt, tokens, "word")
    assert [w["text"] for w in words[:4]] == ["Answer", "the", "question", "from"]
    assert all(not tokens[i]["template"] for w in words for i in w["tokens"])
    with pytest.raises(RequestError) as refused:
        evaluation_units(request, prompt, tokens, "source")
    assert refused.value.field == "evaluate.unit"


# --- through a request: every method, the dry run, the limit, a real TorchServe ---------------------


@pytest.mark.parametrize("attribution", ["integrated_gradients", "gradient_x_input", "saliency"])
def test_a_classifier_answer_measures_its_own_explanation(sentiment, attribution):
    from exformer import explain_gradients
    from exformer.core.evaluate import unit_attributions

    body = {"text": REVIEW, "attribution": attribution, "evaluate": {"unit": "word", "steps": 4, "random_orders": 3}}
    if attribution == "integrated_gradients":
        body["n_steps"] = 8
    r = explain_gradients(sentiment, body)
    e, target = r["evaluation"], r["target"]["index"]
    encoded = encode(sentiment, REVIEW)
    units = classifier_units(sentiment, encoded, REVIEW, None, "word")
    values = unit_attributions(units, np.array([r["attributions"]["raw"]]))[0]  # the answer's own, summed per word
    order = list(np.argsort(-values, kind="stable"))
    F = lambda removed: _probability(sentiment, _removed_text(REVIEW, units, removed), target)  # noqa: E731
    np.testing.assert_allclose(e["rows"][0]["deletion"], [F(order[:j]) for j in e["counts"]], atol=1e-4)
    assert e["unit"] == "word" and e["n_units"] == len(units) and len(e["rows"]) == 1
    again = explain_gradients(sentiment, body)["evaluation"]
    assert again["rows"][0]["random"] == e["rows"][0]["random"]  # the random orders: the seed's


@pytest.mark.parametrize(
    "attribution, unit",
    [("occlusion", None), ("contextcite", None), ("gradient_x_input", "source"), ("saliency", "sentence")],
)
def test_a_continuation_answer_measures_every_row_and_the_whole_answer(lm, attribution, unit):
    from exformer import explain_gradients

    body = {
        "messages": RAG,
        "sources": SOURCES,
        "continuation": ANSWER,
        "attribution": attribution,
        "evaluate": {"steps": 2, "random_orders": 2, **({"unit": unit} if unit else {})},
    }
    if attribution == "contextcite":
        body.update(n_ablations=8, n_holdout=2)
    r = explain_gradients(lm, body)
    e = r["evaluation"]
    assert len(e["rows"]) == len(r["targets"]) + 1 and e["rows"][-1]["target"] is None
    assert e["unit"] == (unit or "source") and e["n_units"] == (2 if (unit or "source") == "source" else e["n_units"])
    for row in e["rows"]:
        assert len(row["deletion"]) == len(e["counts"]) and 0 <= row["win_rate"]["deletion"] <= 1


def test_a_dry_run_counts_the_evaluation(lm):
    from exformer import explain_gradients

    body = {"messages": RAG, "sources": SOURCES, "continuation": ANSWER, "attribution": "occlusion"}
    plain = explain_gradients(lm, {**body, "dry_run": True})
    measured = explain_gradients(lm, {**body, "evaluate": {}, "dry_run": True})
    assert measured["forwards"] > plain["forwards"] and measured["estimated_seconds"] > plain["estimated_seconds"]


def test_an_evaluation_over_the_archives_limit_is_refused_before_any_work(sentiment):
    import dataclasses
    import time

    from exformer import explain_gradients
    from exformer.contract.errors import RequestError
    from exformer.contract.settings import Settings

    few = dataclasses.replace(sentiment, settings=Settings(max_ablations=20))
    started = time.perf_counter()
    with pytest.raises(RequestError) as refused:
        explain_gradients(
            few, {"text": REVIEW, "attribution": "saliency", "evaluate": {"steps": 10, "random_orders": 10}}
        )
    error = refused.value
    assert error.code == 413 and error.field == "evaluate" and "max_ablations (20)" in error.message
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    "body, field",
    [
        ({"text": "a", "continuation": " b", "foil": " c", "evaluate": {}}, "evaluate"),
        (
            {
                "text": "a",
                "continuation": " b",
                "attribution": "occlusion",
                "unit": "sentence",
                "evaluate": {"unit": "word"},
            },
            "evaluate.unit",
        ),
        ({"text": "a", "evaluate": {"unit": "source"}}, "evaluate.unit"),
        ({"text": "a", "evaluate": {"steps": 0}}, "evaluate.steps"),
        ({"text": "a", "evaluate": {"random_orders": 101}}, "evaluate.random_orders"),
        ({"text": "a", "evaluate": {"orders": 3}}, "evaluate.orders"),
    ],
)
def test_a_bad_evaluate_block_names_its_field(body, field):
    from exformer.contract.parsing import parse
    from exformer.contract.requests import GradientsRequest

    error = parse(GradientsRequest, body)
    assert getattr(error, "field", None) == field, error


def test_a_served_answer_carries_its_evaluation(torchserve):
    from exformer.contract.responses import GradientsResponse

    r = torchserve.post(
        "sentiment-gradients",
        {"text": REVIEW, "attribution": "gradient_x_input", "evaluate": {"unit": "word", "random_orders": 4}},
    )
    assert r.status == 200, r.body[:300]
    answer = GradientsResponse.model_validate_json(r.body)
    assert answer.attribution == "gradient_x_input" and answer.evaluation.rows[0].win_rate.deletion is not None
