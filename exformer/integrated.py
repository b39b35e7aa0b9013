"""Integrated and intermediate gradients of many straight paths, in ONE batched pass.

For a path from the baseline x' to the input x (word-embedding outputs, [T, E]) and a
quadrature (αₖ, wₖ), k = 1..n (captum's approximation methods):

    IG(x) = (x − x') ⊙ ∫₀¹ ∂F/∂x(x' + α(x − x')) dα  ≈  (x − x') ⊙ Σₖ wₖ gₖ,
    gₖ = ∂F/∂x at the path point xₖ = x' + αₖ(x − x'),

and completeness says Σ IG ≈ F(x) − F(x') (their difference is the convergence delta).
The gₖ are the intermediate gradients; IG, the delta and the norms are arithmetic on them.

All path points of all paths are laid out in one list and cut into chunks (by default sized
from the sequence length); a chunk may mix paths, padded to its longest sequence. Each chunk
is one forward with the word-embedding output replaced by its path points and one backward
of Σ F (rows are independent, so each row's gradient is its own).
"""

from dataclasses import dataclass

import torch
from captum.attr._utils.approximation_methods import approximation_parameters

from .batching import (
    attention_for_gradients,
    default_chunk_points,
    for_each_chunk,
    head_logits,
    pad_batch,
    target_scores,
)


@dataclass
class StraightPath:
    """One straight path x' → x to integrate along, and what to score at its points."""

    inputs: dict[str, torch.Tensor]  # model kwargs of one sequence, batch of one
    input: torch.Tensor  # x: [T, E] word-embedding output
    baseline: torch.Tensor  # x': [T, E]
    target: int | None  # class index or next-token id; None until the model's choice is known
    n_steps: int = 50
    method: str = "gausslegendre"
    score: str = "probability"  # F: "probability" or "logit" of the target

    def __len__(self):
        return self.input.shape[0]


@dataclass
class PathGradients:
    """Everything the pass saw on one path. IG and the path points are derived, not stored twice."""

    input: torch.Tensor  # x [T, E]
    baseline: torch.Tensor  # x' [T, E]
    alphas: list[float]  # [n] where on [0, 1] each gradient was taken
    step_sizes: torch.Tensor  # [n] float32 quadrature weights (captum's)
    intermediate_gradients: torch.Tensor  # [n, T, E] ∂F/∂x at each path point
    path_scores: torch.Tensor  # [n] F at each path point

    @property
    def intermediates(self) -> torch.Tensor:
        """[n, T, E] the path points, recomputed with the arithmetic that made them for the model."""
        return torch.stack([path_point(self.input, self.baseline, a) for a in self.alphas])

    @property
    def integrated_gradients(self) -> torch.Tensor:
        """[T, E] (x − x') ⊙ Σₖ wₖ gₖ, in captum's order of operations."""
        weighted = self.intermediate_gradients * self.step_sizes.view(-1, 1, 1)
        return weighted.sum(0) * (self.input - self.baseline)

    @property
    def gradient_norms(self) -> torch.Tensor:
        """[n] ‖gₖ‖₂ over tokens and hidden size: where along the path the gradient lives."""
        return self.intermediate_gradients.flatten(1).norm(dim=1)


def nodes(method: str, n_steps: int) -> tuple[list[float], list[float]]:
    """(alphas, step sizes) of captum's quadrature `method` with `n_steps` points."""
    step_sizes, alphas = approximation_parameters(method)
    return alphas(n_steps), step_sizes(n_steps)


def path_point(x: torch.Tensor, baseline: torch.Tensor, alpha: float) -> torch.Tensor:
    """x' + α(x − x'), written as captum writes it so the floats agree."""
    return baseline + alpha * (x - baseline)


def integrate(loaded, paths: list[StraightPath], chunk_points: int | None = None, dtype: str = "float32",
              too_large=None) -> list[PathGradients | None]:
    """Intermediate gradients along each path, in one batched pass over all path points.

    A path one of whose points does not fit in memory even alone is dropped: `too_large(i)`
    is told, its entry is None, and the other paths go on.
    """
    plans = [nodes(p.method, p.n_steps) for p in paths]
    width = paths[0].input.shape[1] if paths else 0
    grads = [torch.empty(p.n_steps, len(p), width) for p in paths]  # [n, T, E] per path
    scores = [torch.empty(p.n_steps) for p in paths]  # [n]
    points = [(i, k) for i, p in enumerate(paths) for k in range(p.n_steps)]
    dropped: set[int] = set()

    def run(chunk):
        chunk = [(i, k) for i, k in chunk if i not in dropped]
        if not chunk:
            return
        rows = [(paths[i], plans[i][0][k]) for i, k in chunk]
        chunk_grads, chunk_scores = gradients_at(loaded, rows, dtype)
        for (i, k), g, s in zip(chunk, chunk_grads, chunk_scores):
            grads[i][k], scores[i][k] = g, s

    def give_up(point):
        dropped.add(point[0])
        if too_large is not None:
            too_large(point[0])

    longest = max((len(p) for p in paths), default=1)
    with attention_for_gradients(loaded.model):
        for_each_chunk(points, chunk_points or default_chunk_points(longest, loaded.device), run,
                       give_up if too_large is not None else None)
    return [
        None if i in dropped else PathGradients(
            input=p.input.cpu(),
            baseline=p.baseline.cpu(),
            alphas=alphas,
            step_sizes=torch.tensor(step_sizes).float(),
            intermediate_gradients=g,
            path_scores=s,
        )
        for i, (p, (alphas, step_sizes), g, s) in enumerate(zip(paths, plans, grads, scores))
    ]


def gradients_at(loaded, rows: list[tuple[StraightPath, float]], dtype: str = "float32"):
    """One chunk: (∂F/∂x [T_i, E] per row on CPU, F [B]) at the points x' + α(x − x')."""
    points = [path_point(p.input, p.baseline, alpha) for p, alpha in rows]
    kwargs, padded, spans = pad_batch(loaded, [p.inputs for p, _ in rows], points)
    padded.requires_grad_()
    with torch.enable_grad():
        logits = head_logits(loaded, kwargs, padded, spans, dtype)  # [B, C]
        score = target_scores(logits, [p.target for p, _ in rows], [p.score for p, _ in rows])  # [B]
        (grad,) = torch.autograd.grad(score.sum(), padded)  # [B, T, E]
    grad = grad.detach().float().cpu()
    return [grad[b, a:e] for b, (a, e) in enumerate(spans)], score.detach().cpu()


@torch.no_grad()
def endpoint_logits(loaded, paths: list[StraightPath], chunk_points: int, dtype: str = "float32",
                    too_large=None) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
    """(logits at x, logits at x') per path, forward only, in shared chunks; None where a
    path's endpoints do not fit in memory (`too_large(i)` is told)."""
    rows = [(i, end) for i in range(len(paths)) for end in ("input", "baseline")]
    out: dict = {}
    dropped: set[int] = set()

    def run(chunk):
        chunk = [(i, end) for i, end in chunk if i not in dropped]
        if not chunk:
            return
        kwargs, padded, spans = pad_batch(
            loaded, [paths[i].inputs for i, _ in chunk], [getattr(paths[i], end) for i, end in chunk])
        for key, logits in zip(chunk, head_logits(loaded, kwargs, padded, spans, dtype).cpu()):
            out[key] = logits

    def give_up(row):
        dropped.add(row[0])
        if too_large is not None:
            too_large(row[0])

    with attention_for_gradients(loaded.model):
        for_each_chunk(rows, chunk_points, run, give_up if too_large is not None else None)
    return [None if i in dropped else (out[i, "input"], out[i, "baseline"]) for i in range(len(paths))]
