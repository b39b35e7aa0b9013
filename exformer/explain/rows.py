"""The pieces every continuation answer is made of, whatever computed it: token rows (with their
message and role in a conversation), where each token lies in its text, units as the contract's
TextUnits, sums per unit and per message, and a token choice."""

import torch

from ..core.loading import LoadedModel
from ..core.prompts import Prompt
from ..core.tokens import TokenRow
from ..core.units import Unit


def token_rows(loaded: LoadedModel, prompt: Prompt, targets: list[int], offsets, text: str) -> list[TokenRow]:
    """The contract's GenerationTokens: the prompt's (with their message, role and template flag
    in a conversation), then the continuation's."""
    strings = loaded.tokenizer.convert_ids_to_tokens(prompt.ids)
    rows: list[TokenRow] = []
    for i, (tid, tok, span) in enumerate(zip(prompt.ids, strings, prompt.spans)):
        row: TokenRow = {
            "index": i,
            "text": tok,
            "id": tid,
            "start": span[1] if span else None,
            "end": span[2] if span else None,
            "surface": prompt.texts[span[0]][span[1] : span[2]] if span else None,
            "segment": 0 if span else None,
            "special": prompt.special[i],
            "target": False,
        }
        if prompt.roles is not None and prompt.message_of is not None and prompt.template is not None:  # messages
            message = prompt.message_of[i]
            row["message"] = message
            row["role"] = prompt.roles[message] if message is not None else "assistant"
            row["template"] = prompt.template[i]
        rows.append(row)
    specials = set(loaded.tokenizer.all_special_ids)
    for tid, tok, (a, b) in zip(targets, loaded.tokenizer.convert_ids_to_tokens(targets), offsets):
        rows.append(
            {
                "index": len(rows),
                "text": tok,
                "id": tid,
                "start": a,
                "end": b,
                "surface": text[a:b],
                "segment": 1,
                "special": tid in specials,
                "target": True,
            }
        )
    return rows


def token_spans(tokens: list[TokenRow]) -> list:
    """Each token's (text, start, end) for core.units, and the texts by that key: a prompt text
    by its index (`text`, or a message's content), the continuation by "c"."""
    spans: list[tuple[str | int, int, int] | None] = []
    for row in tokens:
        start, end = row["start"], row["end"]
        if start is None or end is None or row["special"]:
            spans.append(None)
        else:
            spans.append(("c" if row.get("target") else row.get("message") or 0, start, end))
    return spans


def text_units(units: list[Unit], prompt: Prompt) -> list[dict]:
    """core.units' units as the contract's TextUnits."""
    return [
        {
            "id": u["id"],
            "text": u["text"],
            "segment": 1 if u["where"] == "c" else 0,
            "message": None if u["where"] == "c" or prompt.roles is None else u["where"],
            "start": u["start"],
            "end": u["end"],
            "tokens": u["tokens"],
        }
        for u in units
    ]


def unit_values(units: list[Unit], raw: torch.Tensor) -> list[dict]:
    """Per unit with a token among the first len(raw): {"id", "attribution"} (the sum of those)."""
    n = len(raw)
    out = []
    for unit in units:
        covered = [i for i in unit["tokens"] if i < n]
        if covered:
            out.append({"id": unit["id"], "attribution": float(raw[covered].sum())})
    return out


def message_values(tokens: list[TokenRow], raw: torch.Tensor, roles: list[str]) -> list[dict]:
    """Per message (and the generation prompt), the sum of the row over its tokens."""
    sums: dict = {}
    for row in tokens[: len(raw)]:
        if not row["target"]:
            sums[row["message"]] = sums.get(row["message"], 0.0) + float(raw[row["index"]])
    order = [m for m in range(len(roles)) if m in sums] + ([None] if None in sums else [])
    return [{"message": m, "role": roles[m] if m is not None else "assistant", "attribution": sums[m]} for m in order]


def choice(loaded: LoadedModel, token_id: int, probs: torch.Tensor) -> dict:
    tok = loaded.tokenizer
    return {
        "id": token_id,
        "token": tok.convert_ids_to_tokens(token_id),
        "text": tok.decode([token_id]),
        "probability": float(probs[token_id]),
    }


def messages_used(prompt: Prompt, tokens: list[TokenRow]) -> list[dict]:
    """The contract's MessageUsed: each message with the indices of its tokens."""
    assert prompt.roles is not None, "a conversation's prompt"
    return [
        {
            "role": role,
            "content": content,
            "tokens": [r["index"] for r in tokens if not r["target"] and r.get("message") == k],
        }
        for k, (role, content) in enumerate(zip(prompt.roles, prompt.texts))
    ]


def described_targets(loaded: LoadedModel, targets: list[int], n_prompt: int, logits: torch.Tensor) -> list[dict]:
    """The contract's TargetToken of each target, from its next-token logits [n_t, V] at the input."""
    probs = logits.softmax(-1)
    entropy = -(probs * logits.log_softmax(-1)).sum(-1)
    top = probs.topk(loaded.settings.default_top_k, dim=-1).indices.tolist()
    return [
        {
            "position": n_prompt + t,
            **choice(loaded, y, probs[t]),
            "entropy": float(entropy[t]),
            "alternatives": [choice(loaded, i, probs[t]) for i in top[t]],
        }
        for t, y in enumerate(targets)
    ]


def continuation_answer(loaded: LoadedModel, request, prompt: Prompt, tokens: list[TokenRow], text: str) -> dict:
    """What every continuation answer opens with, whatever computed it: the model, the tokens (and
    the conversation), truncation, the continuation."""
    answer = {
        "model": loaded.details(),
        "tokens": tokens,
        "truncated": prompt.truncated,
        "n_tokens_input": prompt.n_tokens_input,
        "n_tokens_dropped": prompt.n_tokens_dropped,
        "continuation": text,
        "generated": request.generate is not None,
    }
    if prompt.roles is not None:
        answer["messages"] = messages_used(prompt, tokens)
    return answer
