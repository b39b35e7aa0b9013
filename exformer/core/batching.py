"""Plumbing of the gradients pass: chunks of path points, padding, the embedding hook, the score.

Nothing here knows about paths or integrals; `integrated.py` lays the path points out and
calls these to run them (as captum's `_batch_attribution` serves its algorithms).
"""

import inspect
from contextlib import contextmanager
from typing import Any

import torch

from ..contract.errors import RequestError
from .deadline import check as check_deadline
from .loading import LoadedModel
from .options import PassCounters

# Default chunk size, per device type: at most this many tokens (points x length) and this
# many attention scores (points x length²) per forward+backward. On 2 CPU cores MiniLM ran
# fastest per point with ~16 points of 128 tokens and 2 of 512 (with eager attention, 10
# points of 512 were 2x slower per point: the attention maps no longer fit in cache).
# GPUs take far more; out of memory, chunks halve.
CHUNK_BUDGET = {"cpu": (2048, 2**19), "cuda": (65536, 2**26)}


def default_chunk_points(n_tokens: int, device: torch.device) -> int:
    """Path points per forward: short texts batch many, long ones few (see CHUNK_BUDGET)."""
    tokens, scores = CHUNK_BUDGET["cuda" if torch.device(device).type == "cuda" else "cpu"]
    n_tokens = max(1, n_tokens)
    return max(1, min(tokens // n_tokens, scores // n_tokens**2))


def is_out_of_memory(error: BaseException) -> bool:
    message = str(error)
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)
    )


TOO_LARGE = "too long to explain within this worker's memory"


def for_each_chunk(
    items: list, size: int, run, give_up=None, counters: PassCounters | None = None, what: str = "path points"
) -> None:
    """run(items[i:i+size]) over all items; out of memory, halve the size and retry (counted
    in `counters.oom_halvings`). Before each chunk the request's deadline is checked
    (exformer.core.deadline: `what` names the items in how far it got).

    An item that does not fit even alone is handed to `give_up(item)` (which lets the caller
    drop what it belongs to and go on with the rest); without `give_up` it is a 413.
    """
    start = 0
    while start < len(items):
        check_deadline(what, start, len(items))
        chunk = items[start : start + size]
        try:
            run(chunk)
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if not is_out_of_memory(error):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if size > 1:
                if counters is not None:
                    counters.oom_halvings += 1
                size = max(1, size // 2)
                continue
            if give_up is None:
                raise RequestError("text", TOO_LARGE, code=413) from None
            give_up(chunk[0])
        start += len(chunk)


@contextmanager
def attention_for_gradients(loaded: LoadedModel):
    """Switch to the attention kernel `loaded.options.gradient_attention` names for the device,
    where the model can switch; puts back what it found (eager, which the attention view needs)."""
    model = loaded.model
    current = model.config._attn_implementation
    wanted = loaded.options.gradient_attention.get(model.device.type, "sdpa")
    switch = current == "eager" and wanted != "eager" and model._supports_sdpa and model._can_set_attn_implementation()
    if switch:
        model.set_attn_implementation(wanted)
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(current)


def pad_side(loaded: LoadedModel) -> str:
    """Left only for heads that read the last position whatever the mask says (XLNet)."""
    return "left" if getattr(loaded.config, "summary_type", None) == "last" else "right"


def pad_batch(loaded: LoadedModel, inputs: list[dict], embeddings: list[torch.Tensor]):
    """Stack sequences of different lengths: (model kwargs, embeddings [B, T, E], spans).

    `spans[b]` = (start, end) of row b's real tokens. Padding is masked out by the attention
    mask; padded input ids are the pad id (classifier heads of decoders look for it).
    """
    longest = max(e.shape[0] for e in embeddings)
    left = pad_side(loaded) == "left"
    pad_id = loaded.config.pad_token_id
    pad_id = pad_id if pad_id is not None else (loaded.tokenizer.pad_token_id or 0)
    spans = [(longest - e.shape[0], longest) if left else (0, e.shape[0]) for e in embeddings]
    padded = embeddings[0].new_zeros(len(embeddings), longest, embeddings[0].shape[1])
    kwargs = {}
    for name in inputs[0]:
        fill = pad_id if name == "input_ids" else 0
        kwargs[name] = inputs[0][name].new_full((len(inputs), longest), fill)
    for b, ((start, end), row, emb) in enumerate(zip(spans, inputs, embeddings)):
        padded[b, start:end] = emb
        for name, value in row.items():
            kwargs[name][b, start:end] = value[0]
    return kwargs, padded, spans


@contextmanager
def embedding_output(module: torch.nn.Module, values: torch.Tensor, input_ids: torch.Tensor):
    """Make the word-embedding module return `values` [B, T, E] instead of its lookup.

    Some models (XLNet) embed time-first ids [T, B]; they get the values time-first too.
    A half-precision model gets them in its dtype; the gradient still reaches the float32 points.
    """

    def hook(_module, args, output):
        ids = args[0]
        batch_first = ids.shape == input_ids.shape and torch.equal(ids, input_ids)
        return (values if batch_first else values.transpose(0, 1)).to(output.dtype)

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


# Families whose sequence-classification head reads position 0 alone (BERT's pooler, the
# RoBERTa/ELECTRA heads' features[:, 0]) and whose layers are BertLayer-shaped.
FIRST_POSITION_HEADS = {"bert", "roberta", "xlm-roberta", "camembert", "electra"}


class FirstPositionLayer(torch.nn.Module):
    """A BertLayer computed for position 0 only, with its own weights: [B, T, E] → [B, 1, E].

    Keys and values still come from every position, but the query, the attention output and
    the feed-forward only from the position the classifier head reads: 10 of the layer's 12
    E²-sized matmuls per token are skipped, forward and backward. Same math as the layer
    (softmax(qKᵀ·scale + mask)V, residual + LayerNorm, GELU FFN), so the same logits.
    """

    def __init__(self, layer: torch.nn.Module):
        super().__init__()
        self.layer: Any = layer  # duck-typed: a BertLayer's attention.self.query/key/value, output, intermediate

    def forward(self, hidden_states, attention_mask=None, *args, **kwargs):
        attention = self.layer.attention.self
        b, t, _ = hidden_states.shape
        first = hidden_states[:, :1]  # [B, 1, E]

        def heads(x):  # [B, t, E] → [B, H, t, d]
            return x.view(b, x.shape[1], -1, attention.attention_head_size).transpose(1, 2)

        q, k, v = (
            heads(attention.query(first)),
            heads(attention.key(hidden_states)),
            heads(attention.value(hidden_states)),
        )
        if attention_mask is not None and attention_mask.shape[-2] != 1:
            attention_mask = attention_mask[..., :1, :]  # [B, 1, 1, T]: the first position's row
        context = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=attention_mask, scale=attention.scaling
        )  # [B, H, 1, d]
        out = self.layer.attention.output(context.transpose(1, 2).reshape(b, 1, -1), first)  # [B, 1, E]
        return self.layer.output(self.layer.intermediate(out), out)


def _first_position_layers(loaded: LoadedModel):
    """The encoder's layer list, if its last layer may run at position 0 alone; else None."""
    model, config = loaded.model, loaded.config
    if (
        not loaded.options.head_position_only
        or loaded.head != "sequence-classification"
        or config.model_type not in FIRST_POSITION_HEADS
    ):
        return None
    if getattr(config, "is_decoder", False) or getattr(model, "hf_device_map", None):  # sharded: hooks move inputs
        return None
    layers = getattr(getattr(getattr(model, model.base_model_prefix, None), "encoder", None), "layer", None)
    last: Any = layers[-1] if isinstance(layers, torch.nn.ModuleList) and len(layers) else None  # duck-typed
    shaped = (
        last is not None
        and all(hasattr(last, name) for name in ("attention", "intermediate", "output"))
        and all(
            hasattr(last.attention.self, name) for name in ("query", "key", "value", "scaling", "attention_head_size")
        )
    )
    return layers if shaped and not isinstance(last, FirstPositionLayer) else None


@contextmanager
def head_position_only(loaded: LoadedModel):
    """While inside, the last layer of a [CLS]-reading classifier computes position 0 only."""
    layers = _first_position_layers(loaded)
    if layers is None:
        yield
        return
    last = layers[-1]
    layers[-1] = FirstPositionLayer(last)
    try:
        yield
    finally:
        layers[-1] = last


def _accepts(model, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters


def head_logits(
    loaded: LoadedModel, kwargs: dict, embeddings: torch.Tensor, spans, dtype: str = "float32"
) -> torch.Tensor:
    """Logits [B, C] of the classifier, or [B, V] of the next token after each row's last token."""
    model = loaded.model
    extra: dict[str, Any] = {"use_cache": False} if _accepts(model, "use_cache") else {}
    last = torch.tensor([end - 1 for _, end in spans], device=kwargs["input_ids"].device)
    if loaded.head == "causal-lm" and _accepts(model, "logits_to_keep"):
        extra["logits_to_keep"] = last[:, None]  # project only the positions we score
    autocast = torch.autocast(embeddings.device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    with (
        embedding_output(model.get_input_embeddings(), embeddings, kwargs["input_ids"]),
        autocast,
        head_position_only(loaded),
    ):
        logits = model(**kwargs, **extra).logits
    if loaded.head == "causal-lm":
        rows = torch.arange(len(spans), device=logits.device)
        logits = logits[rows, 0] if "logits_to_keep" in extra else logits[rows, last.to(logits.device)]
    return logits.float()
