"""The handlers' own Prometheus metrics, emitted through TorchServe's metrics API.

A worker logs each value; TorchServe's frontend exports it on its metrics port
(`metrics_mode=prometheus`; `model_metrics_auto_detect=true` registers them on first sight),
every series labelled with `ModelName` (and `Hostname`):

  exformer_tokens_per_request            histogram  tokens of each answered request
  exformer_path_points_per_request       histogram  gradients: n_steps of each answered request
  exformer_seconds_per_path_point        histogram  gradients: a batch's pass time / its path points
  exformer_relative_convergence_delta    histogram  gradients: |delta| / |F(x) - F(x')|, the
                                                    completeness error relative to what IG explains
  exformer_oom_chunk_halvings_total      counter    gradients: path-point chunks halved out of memory
  exformer_requests_refused_total        counter    requests (or v1 instances) refused, label `Field`

Everything is derived from the answers (their summaries) and the batch's wall time, so the core
knows nothing of metrics. Outside TorchServe (no `context.metrics`) nothing is emitted.
"""

import logging

from ..contract.responses import relative_delta

logger = logging.getLogger(__name__)

HISTOGRAMS = (
    "exformer_tokens_per_request",
    "exformer_path_points_per_request",
    "exformer_seconds_per_path_point",
    "exformer_relative_convergence_delta",
)
UNITS = {
    "exformer_tokens_per_request": "count",
    "exformer_path_points_per_request": "count",
    "exformer_seconds_per_path_point": "seconds",
    "exformer_relative_convergence_delta": "ratio",
}


class Metrics:
    def __init__(self, context, model_name: str, counters):
        self.model_name = model_name
        self.counters = counters  # the loaded model's PassCounters
        self.halvings_seen = counters.oom_halvings
        self.metrics = {}
        cache = getattr(context, "metrics", None)
        if cache is None:
            return
        try:
            from ts.metrics.metric_type_enum import MetricTypes
        except ImportError:
            return
        for name in HISTOGRAMS:
            self.metrics[name] = cache.add_metric_to_cache(name, UNITS[name], ["ModelName"], MetricTypes.HISTOGRAM)
        self.metrics["exformer_oom_chunk_halvings_total"] = cache.add_metric_to_cache(
            "exformer_oom_chunk_halvings_total", "count", ["ModelName"], MetricTypes.COUNTER
        )
        self.metrics["exformer_requests_refused_total"] = cache.add_metric_to_cache(
            "exformer_requests_refused_total", "count", ["ModelName", "Field"], MetricTypes.COUNTER
        )

    def _emit(self, name: str, value, *labels: str) -> None:
        metric = self.metrics.get(name)
        if metric is not None:
            metric.add_or_update(value, [self.model_name, *labels])

    def refused(self, error) -> None:
        self._emit("exformer_requests_refused_total", 1, error.field or "none")

    def batch(self, results: list, seconds: float) -> None:
        """The answered results of one explained batch, and how long the batch took."""
        summaries = [getattr(r, "summary", r) for r in results if isinstance(getattr(r, "summary", r), dict)]
        points = 0
        for summary in summaries:
            if "tokens" in summary:
                self._emit("exformer_tokens_per_request", len(summary["tokens"]))
            if "n_steps" in summary:
                points += summary["n_steps"]
                self._emit("exformer_path_points_per_request", summary["n_steps"])
                for part in summary.get("targets") or [summary]:  # a continuation: one per target token
                    relative = _relative_delta(part)
                    if relative is not None:
                        self._emit("exformer_relative_convergence_delta", relative)
        if points:
            self._emit("exformer_seconds_per_path_point", seconds / points)
            halvings, self.halvings_seen = self.counters.oom_halvings - self.halvings_seen, self.counters.oom_halvings
            self._emit("exformer_oom_chunk_halvings_total", halvings)  # 0 too, so the series exists


def _relative_delta(summary: dict) -> float | None:
    """Of a gradients summary, or of one target token of a continuation."""
    if "baseline_score" in summary:
        return relative_delta(summary["convergence_delta"], summary["score"], summary["baseline_score"])
    baseline = summary["baseline"]  # null for the methods that start from none (saliency, attnlrp)
    return relative_delta(summary["convergence_delta"], summary["target"]["score"], baseline and baseline["score"])
