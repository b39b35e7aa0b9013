"""Baselines for integrated gradients: the point x' in word-embedding space the path starts from.

Token baselines (pad, unk, mask, period) put one token id at every replaced position and
look the ids up through the model's own input-embedding module, so x' is exactly what the
model would embed for that text (scaled embeddings included). `zero` and the random ones are
built in embedding space; random ones are reproducible from `seed` (the old server used
torch.rand / torch.randn rows, unscaled; so do we).

By default special tokens ([CLS], [SEP], <s>, ...) keep their own embedding in x' so only
content tokens are explained (captum's BERT tutorial does the same); `specials="replace"`
replaces every position, as the old server did.
"""

import torch

from ..contract.errors import RequestError
from ..contract.vocabulary import TOKEN_BASELINES
from .loading import LoadedModel


def baseline_token_id(tokenizer, name: str) -> int:
    """The token id a token baseline puts at every replaced position."""
    if name == "period":
        ids = tokenizer(".", add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise RequestError("baseline", f"'.' is {len(ids)} tokens for this tokenizer, not one")
        return ids[0]
    token_id = getattr(tokenizer, f"{name}_token_id")
    if token_id is None:
        raise RequestError("baseline", f'this model\'s tokenizer has no {name} token; try "zero"')
    return token_id


def default_baseline(tokenizer) -> str:
    """`pad` where the tokenizer has one (the usual reference text), else `zero`."""
    return "pad" if tokenizer.pad_token_id is not None else "zero"


def replaced_positions(special: list[bool], specials: str) -> torch.Tensor:
    """Boolean [T]: the positions whose baseline differs from the input."""
    if specials == "replace":
        return torch.ones(len(special), dtype=torch.bool)
    return ~torch.tensor(special, dtype=torch.bool)


def baseline_ids(input_ids: torch.Tensor, token_id: int, replace: torch.Tensor) -> torch.Tensor:
    """input_ids [T] with the replaced positions set to `token_id`."""
    ids = input_ids.clone()
    ids[replace.to(ids.device)] = token_id
    return ids


@torch.no_grad()
def baseline_embeddings(
    loaded: LoadedModel, input_ids: torch.Tensor, special: list[bool], name: str, specials: str = "keep", seed: int = 0
) -> torch.Tensor:
    """x' [T, E] for the ids [T] of one sequence, on the embedding module's device."""
    embed = loaded.embedding
    device = embed.weight.device
    input_ids = input_ids.to(device)
    replace = replaced_positions(special, specials)
    if name in TOKEN_BASELINES:
        ids = baseline_ids(input_ids, baseline_token_id(loaded.tokenizer, name), replace)
        return embed(ids[None])[0].float()
    x = embed(input_ids[None])[0].float()
    if name == "zero":
        base = torch.zeros_like(x)
    elif name in ("rand-norm", "rand-unif"):
        draw = torch.randn if name == "rand-norm" else torch.rand
        base = draw(x.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    else:
        raise ValueError(f"unknown baseline {name}")
    keep = ~replace.to(device)
    base[keep] = x[keep]
    return base
