"""What a continuation request will cost on this worker, before it runs (`dry_run`, and the
refusal of a request over the archive's `max_estimated_seconds`).

Seconds come from this worker's own speed: the first estimate times one inference forward and
one forward + backward of two 64-token sequences, after a warm-up call (~1-2 s at 135M parameters on one CPU thread);
every request run afterwards corrects the figure by the ratio of its measured to its estimated
seconds (a running mean), so estimates follow the machine and the load it is under. Memory is
counted, not measured: parameters, the activations a chunk of path points keeps for its
backward, and the gradients a continuation holds.
"""

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from .batching import default_chunk_points

if TYPE_CHECKING:  # loading imports this module (Speed)
    from .loading import LoadedModel

CALIBRATION_TOKENS = 64


@dataclass
class Speed:
    """Seconds per token position (inference forward; forward + backward with gradients), and
    how the requests run since compared with what those figures predicted."""

    forward: float | None = None
    gradient: float | None = None
    ratios: dict = field(default_factory=lambda: {"integrated_gradients": [], "forward_only": []})

    def calibrated(self, loaded: "LoadedModel") -> tuple[float, float]:
        """(forward, gradient) seconds per position, timed on the first call."""
        if self.forward is None or self.gradient is None:
            self.forward, self.gradient = _time_passes(loaded)
        return self.forward, self.gradient

    def learn(self, kind: str, predicted: float, seconds: float) -> None:
        """A request of `kind` predicted (uncorrected) at `predicted` s took `seconds`."""
        if predicted > 0:
            self.ratios[kind] = (self.ratios[kind] + [seconds / predicted])[-5:]

    def correction(self, kind: str, optimistic: bool = False) -> float:
        """The factor on the calibrated figure: the median of the last 5 requests' ratios (within
        ¼–4×); `optimistic`: the fastest they have shown, at most 1 — what a refusal uses, so a
        worker slowed by a busy machine or a cold start does not refuse what it can run."""
        ratios = self.ratios[kind]
        if not ratios:
            return 1.0
        if optimistic:
            return min(1.0, min(ratios))
        return min(4.0, max(0.25, sorted(ratios)[len(ratios) // 2]))

    def source(self, kind: str) -> str:
        n = len(self.ratios[kind])
        return (
            f"a {CALIBRATION_TOKENS}-token calibration pass on this worker"
            if not n
            else f"a {CALIBRATION_TOKENS}-token calibration pass, corrected by this worker's last {n} request(s) "
            "of this kind"
        )


def _time_passes(loaded: "LoadedModel") -> tuple[float, float]:
    model, device = loaded.model, loaded.device
    ids = (torch.arange(CALIBRATION_TOKENS, device=device)[None] % max(2, model.config.vocab_size)).expand(2, -1)
    with torch.inference_mode():
        model(input_ids=ids[:1, :8], logits_to_keep=1)  # the first call's one-off set-up is not speed
        start = time.perf_counter()
        model(input_ids=ids, logits_to_keep=1)
        forward = (time.perf_counter() - start) / ids.numel()
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_()
    start = time.perf_counter()
    with torch.enable_grad():
        out = model(inputs_embeds=embeds, logits_to_keep=1).logits[:, -1].log_softmax(-1)[:, 0].sum()
        torch.autograd.grad(out, embeds)
    gradient = (time.perf_counter() - start) / ids.numel()
    return forward, gradient


def parameter_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def activation_bytes(config, length: int) -> int:
    """Bytes one sequence position keeps for a backward through every layer (float32): the inputs
    of each layer's linear maps, norms and activations (~6 hidden + 4 intermediate widths) and
    its attention probabilities (heads × length)."""
    text = config.get_text_config()
    hidden = text.hidden_size
    intermediate = getattr(text, "intermediate_size", None) or 4 * hidden
    per_layer = 6 * hidden + 4 * intermediate + 2 * text.num_attention_heads * length
    return 4 * text.num_hidden_layers * per_layer


def gradients_cost(loaded: "LoadedModel", n_prompt: int, n_targets: int, points: int, chunk: int | None) -> dict:
    """Integrated gradients of a continuation: one forward per path point over prompt + targets,
    one backward per target per point over its own prefix."""
    fed = n_prompt + n_targets - 1
    width = loaded.embedding.embedding_dim
    chunk = min(points, chunk or default_chunk_points(fed, loaded.device))
    backward_positions = points * sum(n_prompt + t for t in range(n_targets))
    forward, gradient = loaded.speed.calibrated(loaded)
    seconds = points * fed * forward + backward_positions * (gradient - forward)
    vocabulary = loaded.config.get_text_config().vocab_size
    peak = (
        parameter_bytes(loaded.model)
        + chunk * fed * activation_bytes(loaded.config, fed)
        + n_targets * points * (fed + 1) * width * 4  # the intermediate gradients held
        + chunk * n_targets * vocabulary * 4 * 2
    )  # the scored rows' logits and their softmax
    return {
        "forwards": points,
        "backwards": points * n_targets,
        "positions": points * fed,
        "calibrated_seconds": seconds,
        "estimated_peak_bytes": int(peak),
        "kind": "integrated_gradients",
    }


def forward_cost(loaded: "LoadedModel", n_versions: int, length: int, shared: int, n_targets: int, rows: int) -> dict:
    """`n_versions` forward-only versions of a prompt of at most `length` tokens: each runs past
    the `shared` prefix, under inference mode. Counts only: nothing is built."""
    forward, gradient = loaded.speed.calibrated(loaded)
    text = loaded.config.get_text_config()
    positions = shared + n_versions * (length + n_targets - 1 - shared)
    width = length + n_targets - shared
    peak = (
        parameter_bytes(loaded.model)
        + rows * width * 4 * (4 * text.hidden_size + 2 * text.num_attention_heads * (width + shared))
        + rows * n_targets * text.vocab_size * 8 * 3
    )
    return {
        "forwards": n_versions,
        "backwards": 0,
        "positions": positions,
        "calibrated_seconds": positions * forward,
        "estimated_peak_bytes": int(peak),
        "kind": "forward_only",
    }
