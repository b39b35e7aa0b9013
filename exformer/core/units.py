"""Sentences and sources: spans of a prompt's texts that attributions are summed over, and
that the forward-only methods leave out (exformer.core.ablation).

The sentence rule is offset-based and the same for every tokenizer: a sentence ends after a
run of `.`, `!`, `?` or `…` (and any closing quotes or brackets) that is followed by
whitespace or the end of the text, and at every line break; its span is trimmed of
whitespace. ("Mr. Smith" is two sentences: there is no language model behind the rule.)
A token belongs to the sentence or source that holds its first visible character; a token of
whitespace only (a line break between sentences) belongs to none.

>>> sentence_spans("It rained. Then? It stopped!\\nDone")
[(0, 10), (11, 16), (17, 28), (29, 33)]
>>> ablate_text("A b. C d. E f.", [(5, 9)])
'A b. E f.'
"""

import re
from typing import Literal, TypedDict

from ..contract.errors import RequestError

_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)|\n")


Where = int | Literal["c"]  # which text a unit lies in: a prompt text (or segment) by index, "c" the continuation


class Unit(TypedDict):
    """A span of one text that attributions are summed over and ablations leave out."""

    id: str
    where: Where
    start: int
    end: int
    text: str
    tokens: list[int]  # the indices of the tokens whose first visible character it holds


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of each sentence of `text`."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    trimmed = []
    for a, b in spans:
        piece = text[a:b]
        if piece.strip():
            a += len(piece) - len(piece.lstrip())
            trimmed.append((a, a + len(piece.strip())))
    return trimmed


def unit_of_tokens(spans: list[tuple[object, int, int] | None], texts: dict, units: list[Unit]) -> list[list[int]]:
    """For each unit ({"where", "start", "end"}), the indices of the tokens whose first visible
    character it holds; `spans` is each token's (where, start, end), or None."""
    members: list[list[int]] = [[] for _ in units]
    by_text: dict = {}
    for k, unit in enumerate(units):
        by_text.setdefault(unit["where"], []).append(k)
    for index, span in enumerate(spans):
        if span is None or span[0] not in by_text:
            continue
        where, a, b = span
        text = texts[where]
        first = next((q for q in range(a, b) if not text[q].isspace()), None)
        if first is None:
            continue
        for k in by_text[where]:
            if units[k]["start"] <= first < units[k]["end"]:
                members[k].append(index)
                break
    return members


def sentence_units(texts: dict, spans) -> list[Unit]:
    """Every sentence of every text in `texts` (in their order), with its tokens."""
    units = [
        Unit(id=f"s{k}", where=where, start=a, end=b, text=texts[where][a:b], tokens=[])
        for k, (where, a, b) in enumerate((w, a, b) for w, text in texts.items() for a, b in sentence_spans(text))
    ]
    for unit, tokens in zip(units, unit_of_tokens(spans, texts, units)):
        unit["tokens"] = tokens
    return units


def source_units(sources, texts: list[str], spans) -> list[Unit]:
    """The request's sources as spans of the prompt's texts (index into `texts`), each with its
    tokens; a text source must occur exactly once, sources must not overlap."""
    units: list[Unit] = []
    for k, source in enumerate(sources):
        field = f"sources[{k}]"
        if source.text is None:
            where = source.message or 0
            if source.end > len(texts[where]):
                what = f"message {where}" if source.message is not None else "text"
                raise RequestError(
                    field, f"end {source.end} is past the end of {what} ({len(texts[where])} characters)"
                )
            start, end = source.start, source.end
        else:
            found = [(w, a) for w, text in enumerate(texts) for a in _occurrences(text, source.text)]
            if len(found) != 1:
                raise RequestError(
                    field,
                    f"text of source {source.id!r} occurs {len(found)} times in the prompt; "
                    "it must occur exactly once (or give message, start and end)",
                )
            (where, start), end = found[0], found[0][1] + len(source.text)
        units.append(Unit(id=source.id, where=where, start=start, end=end, text=texts[where][start:end], tokens=[]))
    for k, a in enumerate(units):
        for b in units[:k]:
            if a["where"] == b["where"] and a["start"] < b["end"] and b["start"] < a["end"]:
                raise RequestError(
                    f"sources[{k}]", f"source {a['id']!r} overlaps source {b['id']!r}; sources must not overlap"
                )
    text_of = dict(enumerate(texts))
    for unit, tokens in zip(units, unit_of_tokens(spans, text_of, units)):
        if not tokens:
            raise RequestError("sources", f"source {unit['id']!r} holds no token of the prompt")
        unit["tokens"] = tokens
    return units


def removed_spans(units: list[Unit], removed) -> dict[int, list[tuple[int, int]]]:
    """The spans to take out of each prompt text when the units `removed` (indices) are left out."""
    spans: dict[int, list[tuple[int, int]]] = {}
    for u in removed:
        where = units[u]["where"]
        if where == "c":
            raise ValueError(f"unit {units[u]['id']} is the continuation's: only a prompt's units are left out")
        spans.setdefault(where, []).append((units[u]["start"], units[u]["end"]))
    return spans


def _occurrences(text: str, part: str) -> list[int]:
    found, at = [], text.find(part)
    while at >= 0:
        found.append(at)
        at = text.find(part, at + 1)
    return found


def ablate_text(text: str, removed: list[tuple[int, int]]) -> str:
    """`text` without the spans `removed`, each taking the whitespace just before it (or, at the
    start of the text, just after it), so that "A. B. C." without B reads "A. C."."""
    keep = [True] * len(text)
    for a, b in removed:
        before = a
        while before > 0 and text[before - 1].isspace():
            before -= 1
        if before == 0:  # nothing before it: take the whitespace after it instead
            while b < len(text) and text[b].isspace():
                b += 1
            before = a if a > 0 and not text[:a].isspace() else 0
        for q in range(before, b):
            keep[q] = False
    return "".join(c for c, k in zip(text, keep) if k)
