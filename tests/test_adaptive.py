"""Adaptive path length (`n_steps: "auto"`) and our own quadrature rules.

The promises: captum's rules reproduced float for float without importing captum.attr; the
nested rules are what they claim; an "auto" request refines until its tolerance holds on the
real sentiment model, computing every gradient once (rows counted by a forward hook on the
model itself); requests refine independently in one batch and answer as they would alone;
the tensors returned are the rule used; bad fields are refused naming the field.
"""

import dataclasses
import gzip
import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from captum.attr._utils.approximation_methods import approximation_parameters

from exformer.contract import FIXED_METHODS, NESTED_METHODS, GradientsRequest
from exformer.contract.errors import RequestError
from exformer.contract.settings import Settings
from exformer.core.loading import load_model
from exformer.core.quadrature import fejer_rule, fixed_rule, kronrod_rule
from exformer.explain import parse_request
from exformer.explain.dispatch import explain_batch
from tiny_models import ROOT

REVIEW = "A warm, funny and quietly moving film."
TEXTS = ["A dull film.", "The plot wanders, but the actors are a joy to watch.", "Not bad at all."]


@pytest.fixture(scope="module")
def sentiment():
    torch.set_num_threads(1)  # a busy 2-core machine: threads spinning against other processes cost more
    return load_model(ROOT / "build/models/sentiment", "sentiment-gradients")


def request(loaded, body):
    parsed = parse_request(loaded, GradientsRequest, body)
    if isinstance(parsed, RequestError):
        raise parsed
    return parsed


def relative_delta(summary) -> float:
    return abs(summary["convergence_delta"]) / abs(summary["target"]["score"] - summary["baseline"]["score"])


# --- the rules --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", FIXED_METHODS)
@pytest.mark.parametrize("n_steps", [2, 3, 7, 16, 50, 128])
def test_fixed_rules_are_captums_float_for_float(method, n_steps):
    step_sizes, alphas = approximation_parameters(method)
    assert fixed_rule(method, n_steps) == (alphas(n_steps), step_sizes(n_steps))


def test_the_runtime_imports_neither_captum_attr_nor_matplotlib():
    code = (
        "import sys, exformer.explain.dispatch, exformer.serving.handler; "
        "print(sorted(m for m in sys.modules if m.startswith(('captum.attr', 'matplotlib'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def exact(rule_alphas, weights, degree) -> float:
    return abs(float(np.dot(weights, np.asarray(rule_alphas) ** degree)) - 1 / (degree + 1))


def test_kronrod_15_holds_gauss_7_and_both_are_exact_to_their_degree():
    alphas, kronrod, gauss = kronrod_rule(0.0, 1.0)
    gauss_nodes = alphas[gauss > 0]
    np.testing.assert_allclose(gauss_nodes, 0.5 * (1 + np.polynomial.legendre.leggauss(7)[0]), atol=1e-15)
    assert max(exact(alphas, kronrod, d) for d in range(23)) < 1e-14  # 3·7 + 1
    assert max(exact(alphas, gauss, d) for d in range(14)) < 1e-14  # 2·7 − 1
    assert exact(alphas, gauss, 14) > 1e-10  # and not beyond


def test_fejer_levels_are_nested_and_exact_to_their_degree():
    for level in (3, 4, 5, 6):
        alphas, weights = fejer_rule(level)
        coarse, _ = fejer_rule(level - 1)
        assert set(coarse.tolist()) <= set(alphas.tolist())  # the same floats: reused as computed
        assert max(exact(alphas, weights, d) for d in range(len(alphas))) < 1e-14


# --- the request ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,field",
    [
        ({"n_steps": "auto", "tolerance": 0}, "tolerance"),
        ({"n_steps": "auto", "tolerance": 1}, "tolerance"),
        ({"n_steps": "auto", "tolerance": -0.1}, "tolerance"),
        ({"n_steps": "auto", "tolerance": 1.5}, "tolerance"),
        ({"n_steps": "auto", "tolerance": "0.01"}, "tolerance"),
        ({"n_steps": "auto", "tolerance": True}, "tolerance"),
        ({"n_steps": 20, "tolerance": 0.01}, "tolerance"),
        ({"n_steps": "auto", "method": "gausslegendre"}, "method"),
        ({"n_steps": "auto", "method": "riemann_trapezoid"}, "method"),
        ({"n_steps": 16, "method": "gausskronrod"}, "n_steps"),
        ({"n_steps": "Auto"}, "n_steps"),
        ({"n_steps": "auto", "max_n_steps": 14}, "max_n_steps"),
        ({"n_steps": "auto", "max_n_steps": 501}, "max_n_steps"),
        ({"n_steps": "auto", "max_n_steps": 100.0}, "max_n_steps"),
        ({"n_steps": 50, "max_n_steps": 100}, "max_n_steps"),
    ],
)
def test_bad_adaptive_fields_are_refused_naming_the_field(sentiment, body, field):
    error = parse_request(sentiment, GradientsRequest, {"text": REVIEW, **body})
    assert isinstance(error, RequestError) and error.code == 400 and error.field == field, error


def test_auto_defaults_to_fejer_at_one_percent(sentiment):
    parsed = request(sentiment, {"text": REVIEW, "n_steps": "auto"})
    assert (parsed.method, parsed.tolerance, parsed.most_steps(sentiment.settings)) == ("fejer", 0.01, 500)
    assert request(sentiment, {"text": REVIEW}).tolerance is None  # a fixed rule has none


# --- on the real model --------------------------------------------------------------------------


class Rows:
    """Rows of every forward of the model (a pre-hook on the model itself)."""

    def __init__(self, model):
        self.count = 0
        self.handle = model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, _module, args, kwargs):
        self.count += kwargs["input_ids"].shape[0]

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.handle.remove()


@pytest.mark.parametrize("method", NESTED_METHODS)
@pytest.mark.parametrize("tolerance", [1e-2, 1e-4])
def test_auto_reaches_the_tolerance_computing_each_gradient_once(sentiment, method, tolerance):
    req = request(sentiment, {"text": REVIEW, "n_steps": "auto", "method": method, "tolerance": tolerance})
    with Rows(sentiment.model) as rows:
        (result,) = explain_batch(sentiment, [req])
    summary, path = result.summary, result.path
    assert summary["converged"] is True and summary["tolerance"] == tolerance and summary["method"] == method
    assert relative_delta(summary) <= tolerance
    assert rows.count == 2 + path.n_computed  # the two endpoints, then each gradient once
    assert len(set(path.alphas)) == summary["n_steps"] == len(path.alphas)
    if method == "fejer":  # nested: every gradient computed is in the rule
        assert path.n_computed == summary["n_steps"]
    else:  # a refined interval's 15 are dropped: 15 + 30 per bisection, 15 per final interval
        assert (path.n_computed - 15) % 30 == 0 and summary["n_steps"] % 15 == 0
        assert path.n_computed == 2 * summary["n_steps"] - 15


def test_a_tighter_tolerance_refines_further(sentiment):
    steps = [
        explain_batch(sentiment, [request(sentiment, {"text": REVIEW, "n_steps": "auto", "tolerance": t})])[0].summary[
            "n_steps"
        ]
        for t in (0.1, 1e-5)
    ]
    assert steps[0] < steps[1]


@pytest.mark.parametrize("method,n_steps", [("gausskronrod", 15), ("fejer", 31)])
def test_max_n_steps_stops_refinement_and_says_not_converged(sentiment, method, n_steps):
    body = {"text": REVIEW, "n_steps": "auto", "method": method, "tolerance": 1e-9, "max_n_steps": 44}
    (result,) = explain_batch(sentiment, [request(sentiment, body)])
    assert result.summary["converged"] is False
    assert result.path.n_computed <= 44 and result.summary["n_steps"] == n_steps  # the next round would pass 44


def test_requests_refine_independently_in_one_batch_and_answer_as_alone(sentiment):
    bodies = [
        {"text": TEXTS[0], "n_steps": "auto", "method": "gausskronrod"},
        {"text": TEXTS[1], "n_steps": "auto", "tolerance": 1e-4},
        {"text": TEXTS[2], "n_steps": 12},
        {"text": REVIEW, "n_steps": "auto", "method": "fejer", "tolerance": 1e-3},
    ]
    requests = [request(sentiment, b) for b in bodies]
    small_chunks = dataclasses.replace(sentiment, settings=Settings(internal_batch_size=7))
    together = explain_batch(small_chunks, requests)
    for one, shared in zip(requests, together):
        alone = explain_batch(sentiment, [one])[0]
        for key in ("n_steps", "converged", "method", "tolerance"):
            assert shared.summary[key] == alone.summary[key], key
        assert shared.path.alphas == alone.path.alphas
        torch.testing.assert_close(
            shared.path.integrated_gradients,
            alone.path.integrated_gradients,
            rtol=1e-4,
            atol=1e-4 * float(alone.path.integrated_gradients.abs().max()),
        )


def test_the_returned_tensors_are_the_rule_used(sentiment):
    body = {"text": TEXTS[1], "n_steps": "auto", "tolerance": 1e-3, "format": "torch-gzip"}
    (result,) = explain_batch(sentiment, [request(sentiment, body)])
    saved = torch.load(io.BytesIO(gzip.decompress(result.body()[0])), weights_only=True)
    n = result.summary["n_steps"]
    grads, steps, points = saved["intermediate_gradients"], saved["step_sizes"], saved["intermediates"]
    assert grads.shape[0] == steps.shape[0] == points.shape[0] == n and n > 15
    assert abs(float(steps.double().sum()) - 1) < 1e-6
    x, baseline = result.path.input, result.path.baseline
    ig = (grads * steps.view(-1, 1, 1)).sum(0) * (x - baseline)
    torch.testing.assert_close(saved["integrated_gradients"][0], ig)
    alphas = torch.tensor(result.path.alphas)
    assert bool((alphas[1:] > alphas[:-1]).all())  # ascending along the path
    torch.testing.assert_close(points, baseline + alphas.view(-1, 1, 1) * (x - baseline))


# --- served --------------------------------------------------------------------------------------


def test_served_auto_answers_the_points_used_and_convergence(torchserve):
    r = torchserve.post("sentiment-gradients", {"text": REVIEW, "n_steps": "auto", "tolerance": 0.005})
    assert r.status == 200, r.body
    out = r.json()
    assert out["method"] == "fejer" and out["tolerance"] == 0.005 and out["converged"] is True
    assert isinstance(out["n_steps"], int) and len(out["alphas"]) == len(out["step_sizes"]) == out["n_steps"]
    assert relative_delta(out) <= 0.005
    bad = torchserve.post("sentiment-gradients", {"text": REVIEW, "n_steps": "auto", "tolerance": 0})
    assert bad.status == 400 and bad.json()["field"] == "tolerance"
