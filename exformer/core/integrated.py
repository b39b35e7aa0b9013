"""Integrated and intermediate gradients of many straight paths, in ONE batched pass.

For a path from the baseline x' to the input x (word-embedding outputs, [T, E]) and a
quadrature (αₖ, wₖ), k = 1..n (captum's rules, or an adaptive Gauss–Kronrod rule):

    IG(x) = (x − x') ⊙ ∫₀¹ ∂F/∂x(x' + α(x − x')) dα  ≈  (x − x') ⊙ Σₖ wₖ gₖ,
    gₖ = ∂F/∂x at the path point xₖ = x' + αₖ(x − x'),

and completeness says Σ IG ≈ F(x) − F(x') (their difference is the convergence delta).
The gₖ are the intermediate gradients; IG, the delta and the norms are arithmetic on them.

The pass is over (path, α) points: `PointPass.run` computes the gradients at any list of
them, all paths' points laid out in one list and cut into chunks (by default sized from
the sequence length); a chunk may mix paths, padded to its longest sequence. Each chunk
is one forward with the word-embedding output replaced by its path points and one backward
of Σ F (rows are independent, so each row's gradient is its own). A fixed rule asks for
its n points once; an adaptive path (`n_steps: "auto"`, `adaptive.py`) asks again, round
after round, for the points its refinement needs, and every point computed is kept, so
nothing is computed twice. The new points of all still-open paths of a round share chunks:
a TorchServe batch stays one batch.
"""

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from .adaptive import Rule, refine, rule_for
from .batching import (
    attention_for_gradients,
    default_chunk_points,
    for_each_chunk,
    head_logits,
    pad_batch,
)
from .loading import LoadedModel
from .scores import per_row


@dataclass
class StraightPath:
    """One straight path x' → x to integrate along, and what to score at its points."""

    inputs: dict[str, torch.Tensor]  # model kwargs of one sequence, batch of one
    input: torch.Tensor  # x: [T, E] word-embedding output
    baseline: torch.Tensor  # x': [T, E]
    target: int | None  # class index or next-token id; None until the model's choice is known
    n_steps: int | str = 50  # "auto": adaptive, until `tolerance`
    method: str = "gausslegendre"
    score: str = "probability"  # F: "probability" or "logit" of the target
    tolerance: float | None = None  # adaptive: relative convergence delta to reach
    max_n_steps: int = 500  # adaptive: most gradients to compute
    ends: tuple[float, float] | None = None  # (F(x), F(x')): adaptive paths check against them

    def __len__(self):
        return self.input.shape[0]

    @property
    def adaptive(self) -> bool:
        return self.n_steps == "auto"

    def rule(self) -> Rule:
        """A fresh rule for the path: its fixed rule, or a nested rule checked against its ends."""
        if self.adaptive:
            assert self.ends is not None and self.tolerance is not None, "an adaptive path has ends and a tolerance"
        return rule_for(self.method, self.n_steps, self.ends, self.tolerance or 0.0, self.max_n_steps)


@dataclass
class PathGradients:
    """Everything the pass saw on one path. IG and the path points are derived, not stored twice."""

    input: torch.Tensor  # x [T, E]
    baseline: torch.Tensor  # x' [T, E]
    alphas: list[float]  # [n] where on [0, 1] each gradient was taken
    step_sizes: torch.Tensor  # [n] float32 quadrature weights
    intermediate_gradients: torch.Tensor  # [n, T, E] ∂F/∂x at each path point
    path_scores: torch.Tensor  # [n] F at each path point
    converged: bool | None = None  # adaptive: whether the tolerance was reached
    n_computed: int | None = None  # gradients computed (adaptive: ≥ n, a refined interval's are dropped)

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


def path_point(x: torch.Tensor, baseline: torch.Tensor, alpha: float) -> torch.Tensor:
    """x' + α(x − x'), written as captum writes it so the floats agree."""
    return baseline + alpha * (x - baseline)


class PointPass:
    """Gradients at (path, α) points, in shared chunks, each point computed once and kept.

    A path one of whose points does not fit in memory even alone is dropped: `too_large(i)`
    is told, and its later points are skipped.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        paths: list[StraightPath],
        chunk_points: int | None = None,
        dtype: str = "float32",
        too_large=None,
    ):
        self.loaded, self.paths, self.chunk_points, self.dtype = loaded, paths, chunk_points, dtype
        self.too_large = too_large
        self.dropped: set[int] = set()
        self.seen: list[dict[float, tuple[torch.Tensor, float]]] = [{} for _ in paths]  # α → (g [T, E], F)

    def run(self, points: list[tuple[int, float]]) -> None:
        """Compute the gradients at `points` not seen yet, all in one chunked pass."""
        todo = [(i, a) for i, a in dict.fromkeys(points) if a not in self.seen[i] and i not in self.dropped]
        if not todo:
            return

        def run(chunk):
            chunk = [(i, a) for i, a in chunk if i not in self.dropped]
            if chunk:
                grads, scores = gradients_at(self.loaded, [(self.paths[i], a) for i, a in chunk], self.dtype)
                for (i, a), g, s in zip(chunk, grads, scores.tolist()):
                    self.seen[i][a] = (g, s)

        def give_up(point):
            self.dropped.add(point[0])
            self.too_large(point[0])

        longest = max(len(self.paths[i]) for i, _ in todo)
        size = self.chunk_points or default_chunk_points(longest, self.loaded.device)
        with attention_for_gradients(self.loaded):
            for_each_chunk(todo, size, run, give_up if self.too_large is not None else None, self.loaded.counters)

    def forget(self, i: int, keep: set[float]) -> None:
        """Free path i's gradients at points no longer in its rule."""
        self.seen[i] = {a: v for a, v in self.seen[i].items() if a in keep}

    def gradients(self, i: int, alphas: list[float], step_sizes: list[float], **extra) -> PathGradients:
        path, seen = self.paths[i], self.seen[i]
        return PathGradients(
            input=path.input.cpu(),
            baseline=path.baseline.cpu(),
            alphas=list(alphas),
            step_sizes=torch.tensor(step_sizes).float(),
            intermediate_gradients=torch.stack([seen[a][0] for a in alphas]),
            path_scores=torch.tensor([seen[a][1] for a in alphas]),
            **extra,
        )


def contributions(path: StraightPath, gradient: torch.Tensor) -> np.ndarray:
    """[T] fₜ(α) = (xₜ − x′ₜ) · gₜ: per token, the integrand whose integral is its attribution."""
    return (gradient.double() * (path.input - path.baseline).double().cpu()).sum(-1).numpy()


def integrate(
    loaded: LoadedModel,
    paths: list[StraightPath],
    chunk_points: int | None = None,
    dtype: str = "float32",
    too_large=None,
) -> list[PathGradients | None]:
    """Intermediate gradients along each path, driven by its rule (`adaptive.refine`): the fixed
    rules' points and the adaptive rules' first round in one batched pass, then one more pass
    per refinement round for the new points of the adaptive paths still open. A path that does
    not fit in memory is None.
    """
    points = PointPass(loaded, paths, chunk_points, dtype, too_large)
    order = sorted(range(len(paths)), key=lambda i: paths[i].adaptive)  # the fixed rules' points first
    rules = {i: paths[i].rule() for i in order}

    def values_at(wanted: list[tuple[int, float]]) -> dict[tuple[int, float], np.ndarray]:
        for i, rule in rules.items():  # free the gradients no rule will use again
            points.forget(i, set(rule.alphas()) | set(rule.wanted()))
        points.run(wanted)
        return {(i, a): contributions(paths[i], points.seen[i][a][0]) for i, a in wanted if i not in points.dropped}

    refine(rules, values_at)
    return [
        None
        if i in points.dropped
        else points.gradients(
            i, rules[i].alphas(), rules[i].weights(), converged=rules[i].converged, n_computed=rules[i].n_computed
        )
        for i in range(len(paths))
    ]


def gradients_at(loaded: LoadedModel, rows: list[tuple[StraightPath, float]], dtype: str = "float32"):
    """One chunk: (∂F/∂x [T_i, E] per row on CPU, F [B]) at the points x' + α(x − x')."""
    points = [path_point(p.input, p.baseline, alpha) for p, alpha in rows]
    kwargs, padded, spans = pad_batch(loaded, [p.inputs for p, _ in rows], points)
    padded.requires_grad_()
    with torch.enable_grad():
        logits = head_logits(loaded, kwargs, padded, spans, dtype)  # [B, C]
        targets = cast(list[int], [p.target for p, _ in rows])  # known by now: a pass needs them
        score = per_row(logits, targets, [p.score for p, _ in rows])  # [B]
        (grad,) = torch.autograd.grad(score.sum(), padded)  # [B, T, E]
    grad = grad.detach().float().cpu()
    return [grad[b, a:e] for b, (a, e) in enumerate(spans)], score.detach().cpu()


@torch.no_grad()
def endpoint_logits(
    loaded: LoadedModel, paths: list[StraightPath], chunk_points: int, dtype: str = "float32", too_large=None
) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
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
            loaded, [paths[i].inputs for i, _ in chunk], [getattr(paths[i], end) for i, end in chunk]
        )
        for key, logits in zip(chunk, head_logits(loaded, kwargs, padded, spans, dtype).cpu()):
            out[key] = logits

    def give_up(row):
        dropped.add(row[0])
        if too_large is not None:
            too_large(row[0])

    with attention_for_gradients(loaded):
        for_each_chunk(
            rows,
            chunk_points,
            run,
            give_up if too_large is not None else None,
            loaded.counters,
            what="endpoint forwards",
        )
    return [None if i in dropped else (out[i, "input"], out[i, "baseline"]) for i in range(len(paths))]
