"""AttnLRP (Achtibat et al., "AttnLRP: Attention-Aware Layer-wise Relevance Propagation for
Transformers", ICML 2024) as gradient × input under a changed backward, on ONE model object for
one pass (`attnlrp`): no class, module global or attention registry entry of transformers is
replaced, so another model in the process, or this one outside the pass, computes as before.

The forward is the model's own (the same logits). The backward is changed so that the relevance
of an activation x is x ⊙ ∂F/∂x, read at the word embeddings (F: a target's logit, the paper's
choice; the score registry's other scores are linear functions of logits and log-softmaxes
propagated plainly):

- linear layers, residual sums, rotary embeddings, the scaling and the additive mask: the plain
  gradient, which as gradient × input is LRP-0 (the ε-rule with ε = 0); biases absorb relevance;
- RMSNorm: the normaliser rsqrt(mean x² + ε) held constant, so relevance passes element by element;
  LayerNorm: the standard deviation held constant (the mean is not), conservative but for β;
- element-wise activations (SiLU, GELU, the pooler's tanh, attention soft-caps): the identity rule,
  the derivative replaced by f(z) / (z + 1e-10), so z · g_in = f(z) · g_out;
- products of two activations (the gated MLP's act(gate) ⊙ up; attention's Q·Kᵀ and A·V): the
  uniform rule, half the relevance to each operand: gradients into q and k divided by 4 (½ at A·V
  moved through the linear softmax backward, ½ at Q·Kᵀ) and into v by 2;
- softmax: the plain gradient, which as gradient × input is the paper's rule
  R_xᵢ = xᵢ (Rᵢ − sᵢ Σⱼ Rⱼ). It is what makes AttnLRP not conservative: a row's relevances do not sum
  to its logit (measured on SmolLM2: " Paris" has logit 17.37 and relevances summing to 6.43).

These are the rules of `lxt` 2.1's efficient mode, which the tests use as the oracle. LRP is
patented (Fraunhofer HHI; the authors' licence: free for personal and scientific use): the method
is offered, never a default a user gets without asking for it.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import torch
from torch import nn

EPSILON = 1e-10  # the identity rule's stabiliser (lxt's): f(z) / (z + ε)

# The families (model_type) whose every layer the rules below cover, each checked against lxt on
# a model of its own (tests/test_attnlrp.py). A family not listed is refused: a rule missed
# silently would answer plain gradient × input under AttnLRP's name.
FAMILIES = frozenset({"llama", "qwen2", "qwen3", "gemma3_text", "gpt2", "bert"})


class _IdentityRule(torch.autograd.Function):
    """y = f(z) with the backward g ↦ g · f(z) / (z + ε)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(y / (z + EPSILON))
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (ratio,) = ctx.saved_tensors
        return g * ratio, None


def identity_rule(f: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        y = f(z)
    return _IdentityRule.apply(z, y) if z.requires_grad else y


class _DivideGradient(torch.autograd.Function):
    """The identity whose backward divides the gradient by `factor` (the uniform rule's share)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return g / ctx.factor, None


def divide_gradient(x: torch.Tensor, factor: float) -> torch.Tensor:
    return _DivideGradient.apply(x, factor) if x.requires_grad else x


def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, softcap=None, **kwargs):
    """Eager attention with the uniform rule on Q·Kᵀ and A·V (q, k: ¼ of the gradient, v: ½), the
    identity rule on a soft-cap, the softmax's own gradient; the signature of transformers'
    attention functions ([batch, heads, positions, head size] in, [batch, positions, heads, head
    size] out), grouped key/value heads repeated as the families' eager functions do."""
    query, key, value = divide_gradient(query, 4), divide_gradient(key, 4), divide_gradient(value, 2)
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * (query.shape[-1] ** -0.5 if scaling is None else scaling)
    if softcap is not None:
        scores = identity_rule(lambda s: torch.tanh(s / softcap) * softcap, scores)
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, :, : key.shape[-2]]
    weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def _rms_norm(module: nn.Module, original: Callable) -> Callable:
    def forward(hidden: torch.Tensor) -> torch.Tensor:
        return identity_rule(original, hidden)  # y = w ⊙ c·x with c constant: y / x per element

    return forward


def _layer_norm(module: nn.LayerNorm) -> Callable:
    def forward(x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(-len(module.normalized_shape), 0))
        centred = x - x.mean(dims, keepdim=True)
        std = (centred.pow(2).mean(dims, keepdim=True) + module.eps).sqrt()
        y = centred / std.detach()
        if module.weight is not None:
            y = y * module.weight
        if module.bias is not None:
            y = y + module.bias
        return y

    return forward


def _activation(original: Callable) -> Callable:
    return lambda z: identity_rule(original, z)


def _gated_mlp(module: Any) -> Callable:
    """down(act(gate(x)) ⊙ up(x)) with the product's gradient halved (act: the identity rule,
    as the activation module it calls is changed too)."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        return module.down_proj(divide_gradient(module.act_fn(module.gate_proj(x)) * module.up_proj(x), 2))

    return forward


def _fused_gated_mlp(module: Any) -> Callable:
    """Phi-3's down(up ⊙ act(gate)), gate and up from one fused projection: the same rule."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        gate, up = module.gate_up_proj(x).chunk(2, dim=-1)
        return module.down_proj(divide_gradient(up * module.activation_fn(gate), 2))

    return forward


_ACTIVATIONS = (nn.SiLU, nn.GELU, nn.Tanh, nn.ReLU, nn.Mish)


def _is_activation(module: nn.Module) -> bool:
    return isinstance(module, _ACTIVATIONS) or type(module).__module__ == "transformers.activations"


def _is_gated_mlp(module: nn.Module) -> bool:
    return all(hasattr(module, name) for name in ("gate_proj", "up_proj", "down_proj", "act_fn"))


def _slot(module: nn.Module) -> str:
    """Where the module's own forward is: under accelerate's device hooks (a sharded or offloaded
    model) the hook's wrapper is `forward` and calls `_old_forward`, which is the one to replace."""
    return "_old_forward" if hasattr(module, "_old_forward") else "forward"


def _forwards(model: nn.Module) -> Iterator[tuple[nn.Module, Callable]]:
    """(module, its AttnLRP forward) for every module whose forward a rule changes."""
    for module in model.modules():
        own = getattr(module, _slot(module))
        if isinstance(module, nn.LayerNorm):
            yield module, _layer_norm(module)
        elif type(module).__name__.endswith("RMSNorm"):
            yield module, _rms_norm(module, own)
        elif _is_activation(module):
            yield module, _activation(own)
        elif _is_gated_mlp(module):
            yield module, _gated_mlp(module)
        elif all(hasattr(module, name) for name in ("gate_up_proj", "down_proj", "activation_fn")):
            yield module, _fused_gated_mlp(module)


def refusal(model: Any) -> str | None:
    """Why AttnLRP does not cover `model`'s family (a transformers model), or None."""
    model_type = model.config.model_type
    if model_type not in FAMILIES:
        return f"AttnLRP covers the families {sorted(FAMILIES)}; this model is a {model_type!r}"
    return None


@contextmanager
def attnlrp(model: nn.Module):
    """Within the block, `model`'s backward propagates AttnLRP's relevance: the forwards of its own
    norm, activation and gated-MLP modules are replaced on the instances (under accelerate's hooks
    their inner `_old_forward`, so weights still arrive), and its attention layers call
    `attention` through a per-model attention implementation. Everything is put back on exit."""
    reason = refusal(model)
    if reason is not None:
        raise ValueError(reason)
    _register()
    replaced: list[tuple[nn.Module, str, Callable | None]] = []
    configs = _attention_configs(model)
    kernels = [config._attn_implementation for config in configs]
    try:
        for module, forward in list(_forwards(model)):
            slot = _slot(module)
            replaced.append((module, slot, module.__dict__.get(slot)))
            setattr(module, slot, forward)
        for config in configs:
            config._attn_implementation = _ATTENTION
        yield model
    finally:
        for module, slot, own in reversed(replaced):
            if own is None:
                delattr(module, slot)
            else:
                setattr(module, slot, own)
        for config, kernel in zip(configs, kernels):
            config._attn_implementation = kernel


_ATTENTION = "exformer_attnlrp"


def _attention_configs(model: nn.Module) -> list:
    """The configs its attention layers read `_attn_implementation` from (one, or one per sub-model)."""
    seen: dict[int, object] = {}
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation"):
            seen.setdefault(id(config), config)
    return list(seen.values())


@cache
def _register() -> None:
    """Make `_ATTENTION` a name transformers' attention layers and mask builders resolve (its
    masks: eager attention's additive ones). Registering a NEW name changes no other model: only
    a model whose config names it calls it. Done at the first pass, not at import: a worker
    imports no transformers before it loads a model."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(_ATTENTION, attention)
    AttentionMaskInterface.register(_ATTENTION, eager_mask)
