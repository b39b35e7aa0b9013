"""The handlers' Prometheus metrics: scraped from a real TorchServe's metrics port after real
requests (the repository's config.properties: metrics_mode=prometheus), each labelled by model."""

import re

import torch

from exformer.contract import relative_delta
from exformer.core import batching
from exformer.core.options import PassCounters
from support.torchserve import metric_value

REVIEW = "A warm, funny and quietly moving film."


def test_each_handler_metric_is_scraped_with_its_model_label(torchserve):
    before = torchserve.metrics()
    g = torchserve.post("sentiment-gradients", {"text": REVIEW, "n_steps": 12}).json()
    a = torchserve.post("minilm-attention", {"text": "The cat sat."}).json()
    assert torchserve.post("sentiment-gradients", {"text": REVIEW, "baseline": "ones"}).status == 400
    after = torchserve.metrics()

    def grew(series, by=None, **labels):
        delta = metric_value(after, series, **labels) - metric_value(before, series, **labels)
        assert delta > 0 if by is None else abs(delta - by) < 1e-9 * max(1, by), (series, labels, delta)

    gradients = {"ModelName": "sentiment-gradients"}
    grew("exformer_tokens_per_request_sum", len(g["tokens"]), **gradients)
    grew("exformer_tokens_per_request_sum", len(a["tokens"]), ModelName="minilm-attention")
    grew("exformer_tokens_per_request_count", 1, ModelName="minilm-attention")
    grew("exformer_path_points_per_request_sum", 12, **gradients)
    grew("exformer_seconds_per_path_point_count", 1, **gradients)
    grew("exformer_seconds_per_path_point_sum", **gradients)
    grew(
        "exformer_relative_convergence_delta_sum",
        relative_delta(g["convergence_delta"], g["target"]["score"], g["baseline"]["score"]),
        **gradients,
    )
    grew("exformer_requests_refused_total", 1, Field="baseline", **gradients)
    assert re.search(r'^exformer_oom_chunk_halvings_total\{ModelName="sentiment-gradients",', after, re.M)
    assert "# TYPE exformer_relative_convergence_delta histogram" in after
    assert "# TYPE exformer_requests_refused_total counter" in after


def test_relative_delta_is_the_delta_over_what_ig_explains():
    assert abs(relative_delta(-0.05, 0.9, 0.4) - 0.1) < 1e-12
    assert relative_delta(-0.05, 0.9, 0.9) is None  # nothing to explain


def test_relative_delta_is_one_answer_everywhere():
    """The client's results, the dataset command and the metrics share one definition."""
    from exformer import GradientsResult
    from exformer.cli.dataset import Row, gradients_record

    summary = {
        "target": {"index": 0, "label": "x", "score": 0.9},
        "baseline": {"score": 0.9},
        "convergence_delta": -0.05,
        "n_steps": 8,
        "tokens": [],
    }
    assert GradientsResult(summary).relative_delta is None
    row = Row(number=0, text="a")
    assert gradients_record(row, summary)["relative_delta"] is None


def test_out_of_memory_halvings_are_counted():
    seen, counters = [], PassCounters()

    def run(chunk):
        if len(chunk) > 2:
            raise torch.OutOfMemoryError("simulated: more than 2 points")
        seen.append(len(chunk))

    batching.for_each_chunk(list(range(8)), 8, run, counters=counters)
    assert seen == [2, 2, 2, 2] and counters.oom_halvings == 2  # 8 → 4 → 2
