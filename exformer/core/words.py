"""Words from the tokenizer's offsets: `aggregate: "word"` sums attributions over a word's tokens.

A word is a whitespace-separated run of tokens of one segment: a token starts a new word when
its characters start with whitespace (byte-level BPE's "Ġword"), when its offsets leave a gap
after the previous token (WordPiece's "a ##b" have none, "a b" has one), or after a special
token. Specials belong to no word. The same rule serves every tokenizer that gives offsets.

>>> rows = [{"start": 0, "end": 3, "segment": 0, "special": False},   # "The"
...         {"start": 3, "end": 8, "segment": 0, "special": False},   # " cats" (starts with whitespace)
...         {"start": 8, "end": 9, "segment": 0, "special": False}]   # "." (no gap: the same word)
>>> [(w["text"], w["tokens"]) for w in word_rows(rows, {0: "The cats."})]
[('The', [0]), ('cats.', [1, 2])]
"""

from typing import NotRequired, TypedDict

import torch

from .tokens import TokenRow


class Word(TypedDict):
    """The contract's Word: a whitespace-separated run of tokens, its span in its text."""

    text: str
    start: int
    end: int
    segment: int | None
    message: NotRequired[int]  # in a conversation
    tokens: list[int]


def text_key(row: TokenRow):
    """Which text a token row's offsets are in: its segment, or (0, message) in a conversation."""
    return (0, row["message"]) if row.get("message") is not None and row["segment"] == 0 else row["segment"]


def word_rows(tokens: list[TokenRow], texts: dict) -> list[Word]:
    """The contract's `words`: text, start, end (in its text), segment (and message), token
    indices. `texts` by `text_key`: a segment, or (0, message) for a message's content."""
    words: list[dict] = []
    previous = None  # (text, end) of the previous content token
    for index, row in enumerate(tokens):
        if row["special"] or row["start"] is None:
            previous = None
            continue
        key, start, end = text_key(row), row["start"], row["end"]
        piece = texts[key][start:end]
        joins = previous == (key, start) and not piece[:1].isspace()
        if joins:
            words[-1]["end"] = end
            words[-1]["tokens"].append(index)
        else:
            words.append(
                {
                    "start": start,
                    "end": end,
                    "key": key,
                    "segment": row["segment"],
                    "message": row.get("message"),
                    "tokens": [index],
                }
            )
        previous = (key, end)
    for word in words:
        text = texts[word["key"]][word["start"] : word["end"]]
        stripped = text.lstrip()
        if stripped:  # a word's span starts at its first visible character
            word["start"] += len(text) - len(stripped)
            text = stripped
        word["text"] = text
    out: list[Word] = []
    for w in words:
        made = Word(text=w["text"], start=w["start"], end=w["end"], segment=w["segment"], tokens=w["tokens"])
        if w["message"] is not None:
            made["message"] = w["message"]
        out.append(made)
    return out


def word_sums(words: list[Word], raw: torch.Tensor) -> torch.Tensor:
    """Per word with a token among the first len(raw) tokens: the sum of those tokens' values."""
    n = len(raw)
    covered = [[i for i in w["tokens"] if i < n] for w in words]
    return torch.stack([raw[c].sum() for c in covered if c]) if any(covered) else raw.new_zeros(0)
