"""Attention explanations: per-layer, per-head attention, per-token predictions, masking.

What exBERT showed, for any Hugging Face model: the tokens, the attention every head pays
from each token to every other, the model's top-k guesses at every position, and the same
again with chosen tokens replaced by the mask token.
"""

import torch

from .encoding import BYTES_PER_VALUE, encode_array
from .errors import RequestError
from .requests import AttentionRequest
from .settings import Settings
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
    probs = torch.softmax(logits, dim=-1)
    top = probs.topk(k, dim=-1)
    tokenizer = loaded.tokenizer
    return [
        [
            {"token": tokenizer.convert_ids_to_tokens(i), "text": tokenizer.decode([i]), "id": i, "prob": p}
            for i, p in zip(ids, ps)
        ]
        for ids, ps in zip(top.indices.tolist(), top.values.tolist())
    ]


def check_response_size(values: int, encoding: str, settings: Settings, field_hint: str) -> None:
    size = int(values * BYTES_PER_VALUE[encoding])
    if size > settings.max_response_bytes:
        raise RequestError(
            "attention",
            f"{values:,} values would make a response of about {size / 2**20:.0f} MiB, over the "
            f"{settings.max_response_bytes / 2**20:.0f} MiB limit; {field_hint}",
            code=413,
        )


def explain_attention(loaded, request: AttentionRequest, settings: Settings) -> dict:
    if request.text is None:
        return {"model": loaded.details()}
    encoded = encode(loaded, request.text, request.text_pair, loaded.max_tokens)
    n = len(encoded)
    layers = request.layers or list(range(loaded.config.num_hidden_layers))
    heads = request.heads or list(range(loaded.config.num_attention_heads))
    check_response_size(
        len(layers) * len(heads) * n * n,
        request.encoding,
        settings,
        'ask for fewer "layers"/"heads", "encoding": "float16-base64", or a shorter text',
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
    predictions = top_k_predictions(loaded, logits, request.top_k) if loaded.head in ("masked-lm", "causal-lm") else None

    tokens = token_table(loaded, encoded, request.text, request.text_pair)
    for row in tokens:
        row["masked"] = row["index"] in masked
        row["predictions"] = predictions[row["index"]] if predictions else None
    selected = attention[layers][:, heads]
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
