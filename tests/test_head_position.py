"""The one pass's speed-up for [CLS]-reading classifiers (exformer.core.batching.FirstPositionLayer):
the last layer runs at the head's position only, and the integrated gradients stay within
1e-6 (relative to the largest) of captum's, which runs the whole model."""

import sys
from pathlib import Path

import pytest

import exformer.core.batching
from exformer import GradientsRequest, Settings, load_model
from exformer.core.options import PassOptions
from exformer.explain import parse_request
from exformer.explain.dispatch import explain_batch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_gradients_core import captum_ig  # noqa: E402  the oracle

FLOAT32 = Settings(dtype="float32")
TEXTS = ["A fine film, warm and funny.", "Dull. Lifeless and far too long for what it has to say about anything."]


def explain(loaded, text, **fields):
    request = parse_request(loaded, GradientsRequest, {"text": text, "n_steps": 16, **fields})
    return explain_batch(loaded, [request])[0]


def relative_error(actual, expected) -> float:
    return float((actual.double() - expected.double()).abs().max() / expected.double().abs().max())


@pytest.fixture(scope="module")
def sentiment():
    return load_model(ROOT / "build/models/sentiment", "sentiment", FLOAT32)


@pytest.mark.parametrize("family", ["bert", "roberta", "electra"])
def test_integrated_gradients_of_tiny_classifiers_equal_captums_within_1e_6(tiny_model_dir, family):
    loaded = load_model(tiny_model_dir(family, classifier=True), family, FLOAT32)
    assert exformer.core.batching._first_position_layers(loaded) is not None
    for baseline in ("pad", "rand-unif"):
        result = explain(loaded, TEXTS[1], baseline=baseline)
        assert relative_error(result.path.integrated_gradients, captum_ig(loaded, result)) <= 1e-6


def test_integrated_gradients_of_the_sentiment_model_equal_captums_within_1e_6(sentiment):
    for text in TEXTS:
        result = explain(sentiment, text, baseline="pad", baseline_specials="replace")
        assert relative_error(result.path.integrated_gradients, captum_ig(sentiment, result)) <= 1e-6


def test_the_last_layer_computes_one_query_per_sequence_and_restores_the_model(sentiment):
    layers = sentiment.model.base_model.encoder.layer
    last = layers[-1]
    rows = []
    handle = last.attention.self.query.register_forward_hook(lambda _m, args, _out: rows.append(args[0].shape[1]))
    try:
        explain(sentiment, TEXTS[0])
    finally:
        handle.remove()
    assert rows and set(rows) == {1}  # one position per sequence, at every chunk
    assert layers[-1] is last  # put back after the pass


def test_requests_sharing_padded_chunks_match_the_whole_last_layer(sentiment, monkeypatch):
    """With padding (a batch of different lengths), the first position's mask row is used."""
    requests = [parse_request(sentiment, GradientsRequest, {"text": t, "n_steps": 8}) for t in TEXTS]
    trimmed = explain_batch(sentiment, requests)
    monkeypatch.setattr(sentiment, "options", PassOptions(head_position_only=False))
    whole = explain_batch(sentiment, requests)
    for a, b in zip(trimmed, whole):
        assert relative_error(a.path.integrated_gradients, b.path.integrated_gradients) <= 2e-6
        assert abs(a.summary["target"]["score"] - b.summary["target"]["score"]) <= 1e-6


def test_models_whose_head_reads_another_position_run_their_whole_last_layer(tiny_model_dir):
    for family in ("xlnet", "gpt2", "distilbert"):
        loaded = load_model(tiny_model_dir(family, classifier=True), family, FLOAT32)
        assert exformer.core.batching._first_position_layers(loaded) is None
