"""The score F an attribution explains, one registry for every method (inseq's step functions):
a function of the logits over the classes or the vocabulary and the index of the target.

    probability        p(y) = softmax(z)_y
    logit              z_y (the old int-gradients-server's score)
    log_probability    log p(y) = z_y − logsumexp(z)
    logit_probability  log p(y) − log(1 − p(y)) = z_y − logsumexp(z without y) (ContextCite's)

The logits are the model's own: a family that soft-caps its logits (Gemma) caps them in its
forward, and a pass that projects hidden states itself applies the same cap once (`head`).

>>> z = torch.tensor([[2.0, 0.0, -1.0]])
>>> [round(float(score(name, z, [0])[0]), 4) for name in SCORES]
[0.8438, 2.0, -0.1698, 1.6867]
"""

import torch


def _pick(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return values.gather(-1, index.unsqueeze(-1))[..., 0]


def _logit_probability(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    others = logits.scatter(-1, index.unsqueeze(-1), -torch.inf).logsumexp(-1)
    return _pick(logits, index) - others


SCORES = {
    "probability": lambda logits, index: _pick(logits.softmax(-1), index),
    "logit": _pick,
    "log_probability": lambda logits, index: _pick(logits.log_softmax(-1), index),
    "logit_probability": _logit_probability,
}


def score(name: str, logits: torch.Tensor, targets) -> torch.Tensor:
    """F [...] of `targets` (ids, broadcast over the leading axes of `logits` [..., V])."""
    index = torch.as_tensor(targets, device=logits.device).expand(logits.shape[:-1])
    return SCORES[name](logits, index)


def contrast(name: str, logits: torch.Tensor, targets, foils=None) -> torch.Tensor:
    """F of the targets, minus F of the foils where given (p(target) − p(foil), or the logit
    difference with "logit" / "log_probability")."""
    values = score(name, logits, targets)
    return values - score(name, logits, foils) if foils is not None else values


def per_row(logits: torch.Tensor, targets: list[int], names: list[str]) -> torch.Tensor:
    """F [B] from logits [B, V], row b scored by names[b] for targets[b] (a batch may mix requests)."""
    out = score(names[0], logits, targets)
    for name in set(names) - {names[0]}:
        chosen = torch.tensor([n == name for n in names], device=logits.device)
        out = torch.where(chosen, score(name, logits, targets), out)
    return out


def head(model):
    """The vocabulary projection as the model's forward applies it: the output embedding, then
    the soft-cap of the families that have one (Gemma: tanh(z / cap) · cap)."""
    cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    projection = model.get_output_embeddings()
    if not cap:
        return projection
    return lambda hidden: torch.tanh(projection(hidden) / cap) * cap


__all__ = ["SCORES", "score", "contrast", "per_row", "head"]
