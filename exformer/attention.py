"""Attention explanations: per-layer, per-head attention, per-token predictions, masking.

What exBERT showed, for any Hugging Face model: the tokens, the attention every head pays
from each token to every other, the model's top-k guesses at every position, and the same
again with chosen tokens replaced by the mask token.
"""

import torch

from .contract import AttentionRequest
from .encoding import attention_response_bytes, check_response_size, encode_array
from .errors import RequestError
from .tokens import encode, token_table


@torch.inference_mode()
def attention_forward(loaded, inputs: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention stacked to [layers, heads, tokens, tokens] and the head's logits (or None)."""
    out = loaded.model(**inputs, output_attentions=True)
    attention = torch.stack([a[0] for a in out.attentions]).float()
    logits = out.logits[0].float() if loaded.head else None
    return attention.to("cpu"), (logits.to("cpu") if logits is not None else None)


def top_k_predictions(loaded, logits: torch.Tensor, k: int) -> list[list[dict]]:
    """Per position, the k most probable tokens (masked-LM: this position; causal: the next)."""
    top = torch.softmax(logits, dim=-1).topk(k, dim=-1)
    ids = top.indices.flatten().tolist()
    tokenizer = loaded.tokenizer
    rows = zip(ids, tokenizer.convert_ids_to_tokens(ids), tokenizer.batch_decode([[i] for i in ids]),
               top.values.flatten().tolist())
    flat = [{"token": token, "text": text, "id": i, "prob": p} for i, token, text, p in rows]
    return [flat[start : start + k] for start in range(0, len(flat), k)]


def attention_response(loaded, request: AttentionRequest) -> dict:
    """The attention response (a dict, as sent on the wire; json arrays as numpy arrays)."""
    if request.text is None:
        return {"model": loaded.details()}
    encoded = encode(loaded, request.text, request.text_pair)
    n = len(encoded)
    all_ = lambda value, size: list(range(size)) if value == "all" else value  # noqa: E731
    layers = all_(request.layers, loaded.config.num_hidden_layers)
    heads = all_(request.heads, loaded.config.num_attention_heads)
    n_values = len(layers) * len(heads) * n * n
    check_response_size(
        attention_response_bytes(n_values, request.encoding), loaded.settings.max_response_bytes,
        "attention", f"{n_values:,} values", ['fewer "layers"/"heads"', '"encoding": "float16-base64"', "a shorter text"],
    )
    masked = set(request.mask or ())
    if masked:
        bad = sorted(i for i in masked if i >= n)
        if bad:
            raise RequestError("mask", f"{bad} out of range: this input has tokens 0..{n - 1}")
        ids = encoded.inputs["input_ids"].clone()
        ids[0, sorted(masked)] = loaded.tokenizer.mask_token_id
        encoded.inputs["input_ids"] = ids

    attention, logits = attention_forward(loaded, encoded.inputs)
    top_k = request.top_k or loaded.settings.default_top_k
    predictions = top_k_predictions(loaded, logits, top_k) if loaded.head in ("masked-lm", "causal-lm") else None

    tokens = token_table(loaded, encoded, request.text, request.text_pair)
    for row in tokens:
        row["masked"] = row["index"] in masked
        row["predictions"] = predictions[row["index"]] if predictions else None
    selected = attention if request.layers == request.heads == "all" else attention[layers][:, heads]
    response = {
        "model": loaded.details(),
        "tokens": tokens,
        "attention": {"layers": layers, "heads": heads, **encode_array(selected, request.encoding)},
        "truncated": encoded.truncated,
        "n_tokens_input": encoded.n_tokens_input,
        "n_tokens_dropped": encoded.n_tokens_dropped,
    }
    if loaded.head == "sequence-classification":
        probs = torch.softmax(logits[0] if logits.dim() > 1 else logits, dim=-1).tolist()
        response["prediction"] = {
            "label": loaded.labels[max(range(len(probs)), key=probs.__getitem__)],
            "probabilities": dict(zip(loaded.labels, probs)),
        }
    return response
