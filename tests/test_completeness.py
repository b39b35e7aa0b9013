"""Completeness of integrated gradients on the real sentiment model and real held-out reviews:
Σ attributions should equal F(x) − F(x′) (the target probability at the input minus at the
baseline). The distribution is printed; the bound asserted is the issue's goal."""

import statistics
import sys

import pytest

from exformer import explain_gradients, load_model
from tiny_models import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import train_sentiment  # noqa: E402

N_SNIPPETS = 20


@pytest.fixture(scope="module")
def sentiment():
    return load_model(ROOT / "build/models/sentiment", "sentiment-gradients")


def test_completeness_on_held_out_reviews(sentiment):
    _, heldout = train_sentiment.split(train_sentiment.load_snippets())
    texts = [text for text, _ in heldout[:N_SNIPPETS]]
    relative = []
    for s in explain_gradients(sentiment, texts, n_steps=50, method="gausslegendre", baseline="pad"):
        gap = s["target"]["score"] - s["baseline"]["score"]
        relative.append(abs(s["convergence_delta"]) / abs(gap))
    q = statistics.quantiles(relative, n=10)
    print(
        f"\n|Σattr − (F(x) − F(x′))| / |F(x) − F(x′)| over {N_SNIPPETS} held-out reviews: "
        f"median {statistics.median(relative):.2e}, p90 {q[-1]:.2e}, max {max(relative):.2e}"
    )
    assert statistics.median(relative) <= 0.01
    assert max(relative) <= 0.05


@pytest.mark.parametrize("tolerance", [0.01])
def test_auto_reaches_its_tolerance_on_held_out_reviews(sentiment, tolerance):
    """n_steps "auto" on the same reviews: each one converged within its tolerance (the
    relative delta is exact), or says it did not; with the archive's 500 points none should."""
    _, heldout = train_sentiment.split(train_sentiment.load_snippets())
    texts = [text for text, _ in heldout[:N_SNIPPETS]]
    answers = explain_gradients(sentiment, texts, n_steps="auto", tolerance=tolerance, baseline="pad")
    relative = [abs(s["convergence_delta"]) / abs(s["target"]["score"] - s["baseline"]["score"]) for s in answers]
    steps = [s["n_steps"] for s in answers]
    print(
        f"\nn_steps auto, tolerance {tolerance}: points in the rule median {statistics.median(steps)}, "
        f"max {max(steps)}; relative delta max {max(relative):.2e}"
    )
    assert all(s["converged"] is True for s in answers)
    assert max(relative) <= tolerance
