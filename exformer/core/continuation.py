"""Continuations of causal LMs: every target token attributed to its prefix, in one batched pass.

For a prompt (P tokens) followed by target tokens y_0 … y_{n-1}, with x [P+n, E] the
word-embedding output of prompt + targets, the t-th score is

    F_t(x) = p(y_t | x_<P+t)        (its logit or log-probability with `score`),
    F_t(x) = p(y_t) − p(foil_t)     with a foil (the logit difference for logit/log_probability),

and its integrated gradients interpolate every position with the same α: x' + α(x − x').
The LM is causal, so F_t reads only positions < P+t: the one path through all positions is
the path of every target, and row t holds P + t values (the baseline of later positions does
not matter). `continuation_baseline: "keep"` holds the earlier target tokens at x instead
(captum's LLMGradientAttribution explains only the prompt), so their values are 0.

One forward per path point serves all targets (the vocabulary projected only at the scored
positions), and each target's gradient is one backward on that retained graph, covering only
its own prefix (`prefix_backward`); captum pays a forward and a backward per target instead.
(A forward segment by segment on the KV cache, the other way to bound each backward, was 4x
slower on CPU: one-token segments make weight-bound matmuls.) `n_steps: "auto"` refines one
nested rule for all targets (`integrate_targets`, through the same driver as straight paths).
Requests and responses: exformer.explain.methods.integrated_gradients.
"""

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from .adaptive import refine, rule_for
from .batching import _accepts, attention_for_gradients, default_chunk_points, embedding_output, for_each_chunk
from .deadline import check as check_deadline
from .integrated import path_point
from .loading import LoadedModel
from .scores import contrast


@dataclass
class ContinuationPath:
    """One straight path through prompt + targets, and the targets scored along it."""

    ids: torch.Tensor  # [L] prompt + target ids, on the model's device
    input: torch.Tensor  # x [L, E]
    baseline: torch.Tensor  # x' [L, E]
    n_prompt: int
    targets: list[int]  # y_t
    foils: list[int] | None  # one per target, or None
    n_steps: int | str = 50  # "auto": refined (integrate_targets)
    method: str = "gausslegendre"
    score: str = "probability"
    whole: bool = False  # one row, F = Σ_t F_t (the whole answer), instead of a row per target

    @property
    def rows(self) -> int:
        """The rows of the answer: one per target, or the whole answer's one."""
        return 1 if self.whole else len(self.targets)

    @property
    def fed(self) -> int:
        """Positions the model reads: the last target is scored, never read."""
        return self.n_prompt + len(self.targets) - 1


@dataclass
class ContinuationGradients:
    """Everything the pass saw. Row t of the IG is its own target's (the one row of `whole`: Σ_t F_t)."""

    input: torch.Tensor  # [L, E]
    baseline: torch.Tensor  # [L, E]
    alphas: list[float]  # [n]
    step_sizes: torch.Tensor  # [n]
    intermediate_gradients: torch.Tensor  # [rows, n, L, E] ∂F_t/∂x at each path point
    path_scores: torch.Tensor  # [n, rows]
    converged: bool | None = None  # n_steps "auto": whether every target reached the tolerance
    logits: torch.Tensor | None = None  # [n_t, V] next-token logits at x (α = 1), when kept

    @property
    def integrated_gradients(self) -> torch.Tensor:
        """[n_t, L, E] (x − x') ⊙ Σₖ wₖ gₖ per target, in captum's order of operations."""
        weighted = self.intermediate_gradients * self.step_sizes.view(1, -1, 1, 1)
        return weighted.sum(1) * (self.input - self.baseline)

    @property
    def intermediates(self) -> torch.Tensor:
        """[n, L, E] the path points (shared by all targets)."""
        return torch.stack([path_point(self.input, self.baseline, a) for a in self.alphas])


class _PrefixLinear(torch.autograd.Function):
    """y = x Wᵀ + b whose backward multiplies only the rows (positions) that carry a gradient.

    F_t of a causal LM reads positions < P+t, so ∂F_t/∂(any activation) is exactly zero at
    later positions, and at the vocabulary projection every scored row but t's is zero too.
    A plain linear backward multiplies those zero rows anyway: each target's backward cost the
    whole sequence. Here it costs the span of rows that are not zero, which is what captum's
    per-target pass over the prefix pays, without its repeated forward. The result is the same
    (zero rows give zero rows); no weight gradient is made (we never need one).
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(weight)
        ctx.input_dtype = x.dtype
        return torch.nn.functional.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        first, last = _live_rows(grad)
        weight = weight.to(grad.dtype)
        live = grad[..., first:last, :]
        product = (live.reshape(-1, live.shape[-1]) @ weight).view(*live.shape[:-1], weight.shape[1])
        if (first, last) == (0, grad.shape[-2]):
            return product.to(ctx.input_dtype), None, None
        return torch.nn.functional.pad(product, (0, 0, first, grad.shape[-2] - last)).to(ctx.input_dtype), None, None


def _live_rows(grad: torch.Tensor) -> tuple[int, int]:
    """[first, last) of the rows (axis −2) holding a non-zero (NaN counts as one)."""
    largest = grad.abs().amax(dim=-1)
    rows = (largest.flatten(0, -2).amax(0) if grad.dim() > 2 else largest).nonzero().view(-1).tolist()
    return (rows[0], rows[-1] + 1) if rows else (0, 0)


@contextmanager
def prefix_backward(model: torch.nn.Module, enabled: bool = True):
    """Every nn.Linear of `model` (and transformers' Conv1D, GPT-2's linear layer) runs
    `_PrefixLinear` while inside (unless not `enabled`: PassOptions.prefix_backward). Under
    accelerate's device hooks the module's original forward is `_old_forward` (the hook calls
    it); else `forward`."""
    swapped = []
    for module in model.modules() if enabled else ():
        if type(module) is torch.nn.Linear:
            forward = lambda x, m=module: _PrefixLinear.apply(x, m.weight, m.bias)  # noqa: E731
        elif type(module).__name__ == "Conv1D" and isinstance(module.weight, torch.Tensor) and module.weight.dim() == 2:
            # GPT-2's: x W + b, W [in, out]
            forward = lambda x, m=module: _PrefixLinear.apply(x, m.weight.t(), m.bias)  # noqa: E731
        else:
            continue
        slot = "_old_forward" if hasattr(module, "_old_forward") else "forward"
        swapped.append((module, slot, module.__dict__.get(slot)))
        setattr(module, slot, forward)
    try:
        yield
    finally:
        for module, slot, previous in swapped:
            if previous is None:
                delattr(module, slot)
            else:
                setattr(module, slot, previous)


def target_logits(
    loaded: LoadedModel,
    ids: torch.Tensor,
    points: torch.Tensor,
    n_prompt: int,
    dtype: str = "float32",
    split: bool = False,
):
    """Next-token logits [B, n_t, V] after positions P-1 … L-1 of `points` [B, L, E]: one causal
    forward, the vocabulary projected only at the scored positions.

    `split=True` returns one [B, 1, V] tensor per target instead, each projected from its own
    row of the last hidden states, so that a target's backward through the projection covers
    that row alone (slicing one [B, n_t, V] tensor makes every backward fill and multiply all
    of it). Only where the model's logits are its output embedding's output unchanged (no
    soft-capping or scaling after it); else the rows are slices of the model's logits.
    """
    model = loaded.model
    rows = ids[None].expand(points.shape[0], -1)
    positions = torch.arange(n_prompt - 1, points.shape[1], device=ids.device)
    extra = {"logits_to_keep": positions} if _accepts(model, "logits_to_keep") else {}
    head = model.get_output_embeddings()
    seen: dict[str, torch.Tensor] = {}
    hook = head.register_forward_hook(lambda _m, args, out: seen.update(hidden=args[0], out=out))
    autocast = torch.autocast(points.device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    try:
        with embedding_output(model.get_input_embeddings(), points, rows), autocast:
            logits = model(input_ids=rows, use_cache=False, **extra).logits
            if split and extra and logits is seen.get("out"):
                hidden = seen["hidden"]
                return [
                    torch.nn.functional.linear(hidden[:, t], head.weight, head.bias).float()[:, None]
                    for t in range(hidden.shape[1])
                ]  # 2-D: a strided 3-D input would make it a bmm
    finally:
        hook.remove()
    logits = (logits if extra else logits[:, positions]).float()
    return list(logits.split(1, dim=1)) if split else logits


def targets_at(
    loaded: LoadedModel,
    path: ContinuationPath,
    alphas: list[float],
    chunk_points: int | None = None,
    dtype: str = "float32",
    logits_at_input: list | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """∂F_t/∂x [n_t, len(alphas), L, E] and F_t [len(alphas), n_t] at the path points x' + α(x − x'):
    per chunk of points one forward, then one backward per target on the retained graph (over
    its own prefix only: `prefix_backward`). `logits_at_input`, if given, receives the logits
    [n_t, V] of the point α = 1 (x itself), so a one-point method needs no other forward of x."""
    n_t, fed, rows = len(path.targets), path.fed, path.rows
    length, width = path.input.shape
    grads = torch.zeros(rows, len(alphas), length, width)  # later positions stay 0: causal
    scores = torch.empty(len(alphas), rows)
    x, base = path.input[:fed], path.baseline[:fed]

    def run(chunk):
        index = torch.tensor(chunk)
        points = torch.stack([path_point(x, base, alphas[k]) for k in chunk]).requires_grad_()  # [B, fed, E]
        with torch.enable_grad():
            logits = target_logits(loaded, path.ids[:fed], points, path.n_prompt, dtype, split=True)  # n_t × [B, 1, V]
            at_input = [b for b, k in enumerate(chunk) if alphas[k] == 1.0]
            if logits_at_input is not None and at_input:
                logits_at_input.append(torch.cat([row[at_input[0]] for row in logits]).detach().float().cpu())
            scored = [  # F_t [B] from its own position's logits
                contrast(
                    path.score,
                    logits[t],
                    path.targets[t : t + 1],
                    None if path.foils is None else path.foils[t : t + 1],
                )[:, 0]
                for t in range(n_t)
            ]
            explained = [torch.stack(scored).sum(0)] if path.whole else scored
            for r, f in enumerate(explained):  # one backward each, on the same graph
                check_deadline(f"target backwards of a chunk of {len(chunk)} path points", r, rows)
                (g,) = torch.autograd.grad(f.sum(), points, retain_graph=r < rows - 1)
                grads[r, index, :fed] = g.detach().float().cpu()
                scores[index, r] = f.detach().float().cpu()

    with attention_for_gradients(loaded), prefix_backward(loaded.model, loaded.options.prefix_backward):
        for_each_chunk(
            list(range(len(alphas))),
            chunk_points or default_chunk_points(fed, loaded.device),
            run,
            counters=loaded.counters,
        )
    return grads, scores


def integrate_targets(
    loaded: LoadedModel,
    path: ContinuationPath,
    chunk_points: int | None = None,
    dtype: str = "float32",
    ends: tuple | None = None,
    tolerance: float = 0.0,
    max_points: int = 0,
    keep_logits: bool = False,
) -> ContinuationGradients:
    """Intermediate gradients of every target along the path's rule (`adaptive.refine`): a fixed
    rule in one pass; with `n_steps: "auto"` one nested rule for all targets, refined until
    every target's convergence delta is within the tolerance against its `ends` (F(x), F(x')),
    or max_points would be passed. The targets share each round's points, so a round is one
    batched pass; the rule's values carry the target axis: fₜ,ᵢ(α) = (xᵢ − x′ᵢ) · ∂F_t/∂xᵢ,
    [n_t, L]. Every gradient is computed once. `keep_logits`: the answer keeps the logits at x (α = 1)."""
    rule = rule_for(path.method, path.n_steps, ends, tolerance, max_points)
    seen: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}  # α → (∂F/∂x [n_t, L, E], F [n_t])
    difference = (path.input - path.baseline).double()
    kept: list | None = [] if keep_logits else None

    def values_at(wanted: list[tuple[int, float]]) -> dict[tuple[int, float], np.ndarray]:
        nonlocal seen
        keep = set(rule.alphas()) | set(rule.wanted())
        seen = {a: v for a, v in seen.items() if a in keep}  # free the gradients the rule dropped
        alphas = [a for _, a in wanted]
        grads, scores = targets_at(loaded, path, alphas, chunk_points, dtype, kept)
        seen.update({a: (grads[:, k], scores[k]) for k, a in enumerate(alphas)})
        return {(0, a): (seen[a][0].double() * difference).sum(-1).numpy() for a in alphas}

    refine({0: rule}, values_at)
    alphas = rule.alphas()
    return ContinuationGradients(
        input=path.input.cpu(),
        baseline=path.baseline.cpu(),
        alphas=alphas,
        step_sizes=torch.tensor(rule.weights()).float(),
        intermediate_gradients=torch.stack([seen[a][0] for a in alphas], 1),
        path_scores=torch.stack([seen[a][1] for a in alphas]),
        converged=rule.converged,
        logits=kept[-1] if kept else None,
    )


@torch.no_grad()
def continuation_endpoint_logits(
    loaded: LoadedModel, path: ContinuationPath, dtype: str = "float32"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token logits [n_t, V] at x and at x' (one forward of both)."""
    fed = path.fed
    with attention_for_gradients(loaded):
        logits = target_logits(
            loaded, path.ids[:fed], torch.stack([path.input[:fed], path.baseline[:fed]]), path.n_prompt, dtype
        ).cpu()
    return logits[0], logits[1]


@torch.no_grad()
def greedy(loaded: LoadedModel, ids: torch.Tensor, max_new_tokens: int) -> list[int]:
    """Greedy continuation ids (argmax each step, on the KV cache), ending after an EOS."""
    model = loaded.model
    eos = loaded.tokenizer.eos_token_id
    extra = {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}
    past, step, new = None, ids[None], []
    for k in range(max_new_tokens):
        check_deadline("generated tokens", k, max_new_tokens)
        out = model(input_ids=step, past_key_values=past, use_cache=True, **extra)
        past = out.past_key_values
        token = int(out.logits[0, -1].argmax())
        new.append(token)
        if token == eos:
            break
        step = torch.tensor([[token]], device=ids.device)
    return new
