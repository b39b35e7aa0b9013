"""Attention requests → responses: the plan of what to keep, its size bound (a 413 before
any forward), the pass (exformer.core.attention), the token table with the top-k predictions,
and the arrays in the request's encoding."""

from dataclasses import replace
from typing import Any

import torch

from ..contract.errors import RequestError
from ..contract.requests import AttentionRequest
from ..contract.responses import AttentionResponse
from ..contract.vocabulary import HEAD_AGGREGATES
from ..core.attention import Plan, attention_pass
from ..core.loading import LoadedModel
from ..core.tokens import encode, token_table
from .encoding import check_response_size, encode_array, encode_sparse, matrices_response_bytes
from .responses import checked, details_response

SUGGESTED_TOP_K_PER_ROW = 32  # what a 413 suggests; bench/long_attention.py shows the mass it keeps


def plan_of(loaded: LoadedModel, request: AttentionRequest) -> Plan:
    cfg = loaded.config
    every = lambda value, size: list(range(size)) if isinstance(value, str) else list(value)  # noqa: E731
    return Plan(
        layers=every(request.layers, cfg.num_hidden_layers),
        heads=every(request.heads, cfg.num_attention_heads),
        aggregate=request.heads if isinstance(request.heads, str) and request.heads in HEAD_AGGREGATES else None,
        attention=request.rollout != "only",
        rollout=bool(request.rollout),
        k=request.top_k_per_row,
    )


def response_bytes(plan: Plan, encoding: str, n: int, top_k: int) -> int:
    """An upper bound of the encoded response for n tokens (`top_k` predictions each)."""
    size = 4096 + n * (256 + 160 * top_k)  # the model block, the token table, predictions
    if plan.attention:
        size += matrices_response_bytes(len(plan.layers) * plan.head_maps, n, encoding, plan.k)
    if plan.rollout:
        size += matrices_response_bytes(len(plan.layers), n, encoding, plan.k)
    return size


def check_size(plan: Plan, encoding: str, n: int, top_k: int, limit: int) -> None:
    """413 before any forward, naming each option that shrinks the response and its size."""
    size = response_bytes(plan, encoding, n, top_k)
    if size <= limit:
        return
    changes: list[tuple[str, dict[str, Any], str]] = []  # (label, plan changes, encoding)
    if plan.attention and plan.aggregate is None and len(plan.heads) > 1:
        changes.append(('"heads": "mean"', {"aggregate": "mean"}, encoding))
    if encoding == "json":
        changes.append(('"encoding": "float16-base64"', {}, "float16-base64"))
    if plan.k is None or plan.k > SUGGESTED_TOP_K_PER_ROW:
        changes.append((f'"top_k_per_row": {SUGGESTED_TOP_K_PER_ROW}', {"k": SUGGESTED_TOP_K_PER_ROW}, encoding))
    if len(changes) > 1:
        smallest = "float16-base64" if any(e == "float16-base64" for _, _, e in changes) else encoding
        changes.append(
            (
                " with ".join(label for label, _, _ in changes),
                {k: v for _, c, _ in changes for k, v in c.items()},
                smallest,
            )
        )
    hints = [
        f"{label} (about {_mib(response_bytes(replace(plan, **change), enc, n, top_k))})"
        for label, change, enc in changes
    ]
    maps = len(plan.layers) * (plan.head_maps if plan.attention else 0) + len(plan.layers) * plan.rollout
    check_response_size(
        size,
        limit,
        "attention" if plan.attention else "rollout",
        f"{maps:,} maps of {n}x{n} tokens",
        hints + ['fewer "layers"', "a shorter text"],
    )


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def top_k_predictions(loaded: LoadedModel, logits: torch.Tensor, k: int, rows_per_chunk: int = 256) -> list[list[dict]]:
    """Per position, the k most probable tokens (masked-LM: this position; causal: the next).
    Softmax by chunks of rows: at 2k tokens a whole [T, vocab] softmax is another 400 MB."""
    values, indices = [], []
    for chunk in logits.split(rows_per_chunk):
        top = torch.softmax(chunk, dim=-1).topk(k, dim=-1)
        values.append(top.values)
        indices.append(top.indices)
    ids = torch.cat(indices).flatten().tolist()
    tokenizer = loaded.tokenizer
    rows = zip(
        ids,
        tokenizer.convert_ids_to_tokens(ids),
        tokenizer.batch_decode([[i] for i in ids]),
        torch.cat(values).flatten().tolist(),
    )
    flat = [{"token": token, "text": text, "id": i, "prob": p} for i, token, text, p in rows]
    return [flat[start : start + k] for start in range(0, len(flat), k)]


def _encoded(buffers: dict, encoding: str) -> dict:
    return encode_array(buffers["dense"], encoding) if "dense" in buffers else encode_sparse(buffers, encoding)


def attention_response(loaded: LoadedModel, request: AttentionRequest) -> dict:
    """The attention response (a dict, as sent on the wire; json arrays as numpy arrays)."""
    if request.text is None:
        return details_response(loaded)
    encoded = encode(loaded, request.text, request.text_pair)
    n = len(encoded)
    plan = plan_of(loaded, request)
    top_k = request.top_k or loaded.settings.default_top_k
    predicts = loaded.head in ("masked-lm", "causal-lm")
    check_size(plan, request.encoding, n, top_k if predicts else 0, loaded.settings.max_response_bytes)
    masked = set(request.mask or ())
    if masked:
        bad = sorted(i for i in masked if i >= n)
        if bad:
            raise RequestError("mask", f"{bad} out of range: this input has tokens 0..{n - 1}")
        ids = encoded.inputs["input_ids"].clone()
        ids[0, sorted(masked)] = loaded.tokenizer.mask_token_id
        encoded.inputs["input_ids"] = ids

    collector, logits = attention_pass(loaded, encoded.inputs, plan)
    attention, rollout = collector.results()
    predictions = top_k_predictions(loaded, logits, top_k) if predicts and logits is not None else None

    tokens = token_table(loaded, encoded, request.text, request.text_pair)
    for row in tokens:
        row["masked"] = row["index"] in masked
        row["predictions"] = predictions[row["index"]] if predictions else None
    response: dict = {"model": loaded.details(), "tokens": tokens}
    if attention is not None:
        response["attention"] = {
            "layers": plan.layers,
            "heads": plan.heads,
            "aggregate": plan.aggregate,
            **_encoded(attention, request.encoding),
        }
    if rollout is not None:
        response["rollout"] = {"layers": plan.layers, **_encoded(rollout, request.encoding)}
    response.update(
        truncated=encoded.truncated, n_tokens_input=encoded.n_tokens_input, n_tokens_dropped=encoded.n_tokens_dropped
    )
    if loaded.labels is not None and logits is not None:  # a classifier
        probs = torch.softmax(logits[0] if logits.dim() > 1 else logits, dim=-1).tolist()
        response["prediction"] = {
            "label": loaded.labels[max(range(len(probs)), key=probs.__getitem__)],
            "probabilities": dict(zip(loaded.labels, probs)),
        }
    return checked(AttentionResponse, response)
