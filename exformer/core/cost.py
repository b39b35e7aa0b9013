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

import torch

from .batching import default_chunk_points
from .loading import LoadedModel
from .options import CALIBRATION_TOKENS


def calibrated(loaded: LoadedModel) -> tuple[float, float]:
    """(forward, gradient) seconds per position on this worker, timed on the first call."""
    speed = loaded.speed
    if speed.forward is None or speed.gradient is None:
        speed.forward, speed.gradient = _time_passes(loaded)
    return speed.forward, speed.gradient


def _time_passes(loaded: LoadedModel) -> tuple[float, float]:
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


def gradients_cost(
    loaded: LoadedModel, n_prompt: int, n_targets: int, points: int, chunk: int | None, whole: bool = False
) -> dict:
    """Integrated gradients of a continuation: one forward per path point over prompt + targets,
    one backward per target per point over its own prefix (`whole`: one per point, over all)."""
    fed = n_prompt + n_targets - 1
    width = loaded.embedding.embedding_dim
    chunk = min(points, chunk or default_chunk_points(fed, loaded.device))
    rows = 1 if whole else n_targets
    backward_positions = points * (fed if whole else sum(n_prompt + t for t in range(n_targets)))
    forward, gradient = calibrated(loaded)
    seconds = points * fed * forward + backward_positions * (gradient - forward)
    vocabulary = loaded.config.get_text_config().vocab_size
    peak = (
        parameter_bytes(loaded.model)
        + chunk * fed * activation_bytes(loaded.config, fed)
        + rows * points * (fed + 1) * width * 4  # the intermediate gradients held
        + chunk * n_targets * vocabulary * 4 * 2
    )  # the scored rows' logits and their softmax
    return {
        "forwards": points,
        "backwards": points * rows,
        "positions": points * fed,
        "calibrated_seconds": seconds,
        "estimated_peak_bytes": int(peak),
        "kind": "integrated_gradients",
    }


def forward_cost(loaded: LoadedModel, n_versions: int, length: int, shared: int, n_targets: int, rows: int) -> dict:
    """`n_versions` forward-only versions of a prompt of at most `length` tokens: each runs past
    the `shared` prefix, under inference mode. Counts only: nothing is built."""
    forward, gradient = calibrated(loaded)
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
