"""Tokenize one request: ids for the model, offsets and flags for the client, and honesty
about truncation (the old exFormer cut at 225 characters without a word)."""

import inspect
from dataclasses import dataclass
from typing import NotRequired, TypedDict

import torch

from ..contract.errors import RequestError
from .loading import LoadedModel


@dataclass
class Encoded:
    inputs: dict[str, torch.Tensor]  # model kwargs, batch of one
    ids: list[int]
    offsets: list[tuple[int, int] | None]  # character span in its segment's text; None: special
    special: list[bool]
    segments: list[int | None]  # 0: text, 1: text_pair, None: special token
    n_tokens_input: int  # before truncation
    n_tokens_dropped: int

    @property
    def truncated(self) -> bool:
        return self.n_tokens_dropped > 0

    def __len__(self):
        return len(self.ids)


def _accepted_inputs(model) -> set[str]:
    return set(inspect.signature(model.forward).parameters)


def encode(loaded: LoadedModel, text: str, text_pair: str | None = None) -> Encoded:
    """Tokenize once (a second time only to truncate a text over the model's max_tokens)."""
    max_tokens = loaded.max_tokens
    tokenize = lambda truncate: loaded.tokenizer(  # noqa: E731
        text,
        text_pair,
        truncation=truncate,
        max_length=max_tokens if truncate else None,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_tensors="pt",
    )
    from transformers.utils import logging as hf_logging  # here: a worker imports transformers when it loads

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the over-length warning: we report it in the response
    try:
        enc = tokenize(False)
        n_input = enc["input_ids"].shape[1]
        if n_input > max_tokens:
            enc = tokenize(True)
    finally:
        hf_logging.set_verbosity(verbosity)
    ids = enc["input_ids"][0].tolist()
    if not ids:
        raise RequestError("text", "produced no tokens")
    special = [bool(s) for s in enc["special_tokens_mask"][0].tolist()]
    segments = enc.sequence_ids(0)
    offsets = [
        None if is_special or seg is None else (int(a), int(b))
        for (a, b), is_special, seg in zip(enc["offset_mapping"][0].tolist(), special, segments)
    ]
    accepted = _accepted_inputs(loaded.model)
    inputs = {
        k: v.to(loaded.device)
        for k, v in enc.items()
        if k in accepted and k not in ("offset_mapping", "special_tokens_mask")
    }
    return Encoded(
        inputs=inputs,
        ids=ids,
        offsets=offsets,
        special=special,
        segments=[s if not sp else None for s, sp in zip(segments, special)],
        n_tokens_input=n_input,
        n_tokens_dropped=max(0, n_input - len(ids)),
    )


class TokenRow(TypedDict):
    """One token of an answer (the contract's Token, GenerationToken): what the tokenizer made of
    the input and where it lies; `start`/`end` index the text of its `segment` (or message)."""

    index: int
    text: str
    id: int
    start: int | None
    end: int | None
    surface: str | None
    segment: int | None
    special: bool
    target: NotRequired[bool]  # a continuation's rows: False in the prompt
    message: NotRequired[int | None]  # in a conversation: the message it lies in (None: the template's)
    role: NotRequired[str]
    template: NotRequired[bool]
    masked: NotRequired[bool]  # the attention view's
    predictions: NotRequired[list[dict] | None]


def token_table(loaded: LoadedModel, encoded: Encoded, text: str, text_pair: str | None) -> list[TokenRow]:
    """One row per token: what the tokenizer made of the input, and where it came from."""
    strings = loaded.tokenizer.convert_ids_to_tokens(encoded.ids)
    sources = (text, text_pair or "")  # a token of the pair comes with a pair
    rows: list[TokenRow] = []
    for i, (tid, tok, span, is_special, seg) in enumerate(
        zip(encoded.ids, strings, encoded.offsets, encoded.special, encoded.segments)
    ):
        rows.append(
            {
                "index": i,
                "text": tok,
                "id": tid,
                "start": span[0] if span else None,
                "end": span[1] if span else None,
                "surface": sources[seg][span[0] : span[1]] if span and seg is not None else None,
                "segment": seg,
                "special": is_special,
            }
        )
    return rows
