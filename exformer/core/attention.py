"""Attention explanations: per-layer, per-head attention, rollout, per-token predictions, masking.

What exBERT showed, for any Hugging Face model: the tokens, the attention every head pays
from each token to every other, the model's top-k guesses at every position, and the same
again with chosen tokens replaced by the mask token. Beside it, attention rollout (Abnar &
Zuidema 2020), and for long prompts maps aggregated over heads and sparse rows.

Each layer's attention [heads, T, T] is taken from the forward as it is made (a hook on the
modules transformers itself records for `output_attentions`) and reduced at once to what the
response holds, so a 2k-token prompt never holds every layer's maps (30 × 9 × 2048² float32 =
4.5 GB for SmolLM2):

    attention   A_l[heads] | mean_h A_l | max_h A_l      → dense, or the top k of every row
    rollout     Ã_l = rows-normalised(0.5 · mean_h A_l + 0.5 · I);  R_l = Ã_l · R_(l-1), R_(-1) = I
"""

import threading
from dataclasses import dataclass

import torch

from .loading import LoadedModel


@torch.inference_mode()
def attention_forward(loaded: LoadedModel, inputs: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention stacked to [layers, heads, tokens, tokens] and the head's logits (or None).
    Every map of every layer at once: for short texts and benchmarks (see `attention_pass`)."""
    out = loaded.model(**inputs, output_attentions=True)
    attention = torch.stack([a[0] for a in out.attentions]).float()
    logits = out.logits[0].float() if loaded.head else None
    return attention.to("cpu"), (logits.to("cpu") if logits is not None else None)


@dataclass(frozen=True)
class Plan:
    """What one pass keeps of the maps, decided before the forward."""

    layers: list[int]  # the model's layers kept (attention and rollout alike)
    heads: list[int]  # heads kept, or aggregated (every head)
    aggregate: str | None  # "mean" | "max": one map per layer
    attention: bool
    rollout: bool
    k: int | None  # keep the top k of every row (sparse), or None: dense

    @property
    def head_maps(self) -> int:
        return 1 if self.aggregate else len(self.heads)


def top_k_rows(matrices: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """The k largest values of every row of [..., T, T], their columns, and each row's kept
    and remaining mass (row sum − kept, ≥ 0), so a sparse answer drops nothing unsaid."""
    top = matrices.topk(min(k, matrices.shape[-1]), dim=-1)  # sorted, largest first
    kept = top.values.sum(-1)
    rest = (matrices.sum(-1) - kept).clamp_min_(0)
    return {"values": top.values, "columns": top.indices.to(torch.int32), "kept": kept, "rest": rest}


class LayerByLayer:
    """Takes each layer's attention [1, H, T, T] as the forward makes it and keeps only what the
    plan returns, in preallocated [returned layers, …] buffers on the CPU: the maps of the
    returned layers (their heads, or their mean/max), dense or as the top k of each row, and
    the running rollout R (kept at every returned layer)."""

    def __init__(self, plan: Plan, n_layers: int, n: int):
        self.plan, self.n_layers, self.n = plan, n_layers, n
        self.slot = {layer: i for i, layer in enumerate(plan.layers)}
        self.seen = 0
        self.attention = self._buffers(plan.head_maps) if plan.attention else None
        self.rollout = self._buffers(None) if plan.rollout else None
        self.R: torch.Tensor | None = None  # [T, T]
        self.lower = True  # every Ã so far lower-triangular (causal): R is too

    def _buffers(self, heads: int | None) -> dict[str, torch.Tensor]:
        lead = (len(self.plan.layers), *((heads,) if heads else ()), self.n)
        if self.plan.k is None:
            return {"dense": torch.empty(*lead, self.n)}
        k = min(self.plan.k, self.n)
        return {
            "values": torch.empty(*lead, k),
            "columns": torch.empty(*lead, k, dtype=torch.int32),
            "kept": torch.empty(lead),
            "rest": torch.empty(lead),
        }

    def _store(self, buffers: dict, slot: int, maps: torch.Tensor) -> None:
        if self.plan.k is None:  # dense buffers
            buffers["dense"][slot] = maps
        else:
            for key, value in top_k_rows(maps, self.plan.k).items():
                buffers[key][slot] = value

    def __call__(self, weights: torch.Tensor) -> None:
        layer, self.seen = self.seen, self.seen + 1
        a = weights[0].float()  # [H, T, T]
        slot = self.slot.get(layer)
        if self.rollout is not None:
            self._roll(a, slot)
        if self.attention is not None and slot is not None:
            self._store(self.attention, slot, self._heads(a))

    def _heads(self, a: torch.Tensor) -> torch.Tensor:
        if self.plan.aggregate == "mean":
            return a.mean(0, keepdim=True)
        if self.plan.aggregate == "max":
            return a.amax(0, keepdim=True)
        return a if self.plan.heads == list(range(a.shape[0])) else a[self.plan.heads]

    def _roll(self, a: torch.Tensor, slot: int | None) -> None:
        m = a.mean(0)  # [T, T] heads averaged
        m.mul_(0.5).diagonal().add_(0.5)  # the residual: 0.5 · A + 0.5 · I
        m.div_(m.sum(-1, keepdim=True))  # rows normalised
        self.lower = self.lower and not torch.triu(m, diagonal=1).any()
        if self.R is None:
            self.R = m
        else:
            self.R = lower_triangular_matmul(m, self.R) if self.lower else m @ self.R
        if slot is not None and self.rollout is not None:
            self._store(self.rollout, slot, self.R)

    def results(self) -> tuple[dict | None, dict | None]:
        if self.seen != self.n_layers:
            raise RuntimeError(f"captured {self.seen} attention maps from a model of {self.n_layers} layers")
        return self.attention, self.rollout


def lower_triangular_matmul(a: torch.Tensor, b: torch.Tensor, block: int = 256) -> torch.Tensor:
    """a @ b for lower-triangular [T, T] a and b (a causal model's Ã and R), by row blocks:
    block rows [s, e) need only columns and rows [0, e), a third of the full product's work."""
    out = torch.zeros_like(a)
    for start in range(0, a.shape[0], block):
        end = min(start + block, a.shape[0])
        out[start:end, :end] = a[start:end, :end] @ b[:end, :end]
    return out


def attention_modules(model) -> list[tuple[torch.nn.Module, int]]:
    """The modules whose output carries one layer's attention weights, with the index in that
    output: the ones transformers' own recorder hooks for `output_attentions`
    (`_can_record_outputs["attentions"]`). Empty for models without it (XLNet)."""
    found: dict[int, tuple[torch.nn.Module, int]] = {}
    for sub in model.modules():
        specs = (getattr(type(sub), "_can_record_outputs", None) or {}).get("attentions")
        for spec in specs if isinstance(specs, list) else [specs] if specs else []:
            if isinstance(spec, (type, str)):
                cls, index, layer_name, class_name = (
                    (spec, 1, None, None) if isinstance(spec, type) else (None, 1, None, spec)
                )
            else:
                cls, index, layer_name, class_name = spec.target_class, spec.index, spec.layer_name, spec.class_name
            for name, module in sub.named_modules():
                if not ((cls is not None and isinstance(module, cls)) or (class_name and name.endswith(class_name))):
                    continue
                if layer_name and f".{layer_name.strip('.')}." not in f".{name}.":
                    continue
                found.setdefault(id(module), (module, index))
    return list(found.values())


@torch.inference_mode()
def attention_pass(loaded: LoadedModel, inputs: dict, plan: Plan) -> tuple[LayerByLayer, torch.Tensor | None]:
    """One forward; each layer's attention goes to a LayerByLayer as it is made (and is then
    dropped from the model's outputs), so the peak memory is one layer's maps plus the answer."""
    n_layers = loaded.config.num_hidden_layers
    collector = LayerByLayer(plan, n_layers, inputs["input_ids"].shape[1])
    owner = threading.get_ident()  # a model shared by threads (a notebook): each pass takes its own

    def take(module, args, output, index):
        if threading.get_ident() != owner:
            return None
        if not isinstance(output, tuple) or output[index] is None:
            raise RuntimeError(f"{type(module).__name__} returned no attention weights (is attention eager?)")
        collector(output[index])
        return output[:index] + (None,) + output[index + 1 :]

    modules = attention_modules(loaded.model)
    handles = [
        module.register_forward_hook(lambda m, a, o, i=index: take(m, a, o, i), prepend=True)
        for module, index in modules
    ]
    try:
        out = loaded.model(**inputs, output_attentions=True)
    finally:
        for handle in handles:
            handle.remove()
    if not modules:  # no recorder to hook: every layer from the outputs, reduced the same way
        for weights in out.attentions:
            collector(weights)
    logits = out.logits[0].float() if loaded.head else None
    return collector, (logits.to("cpu") if logits is not None else None)
