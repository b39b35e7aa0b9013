"""Hugging Face model directory → a model ready to explain (eager attention, eval, placed)."""

from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoModel, AutoTokenizer
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from .settings import Settings

# RoBERTa-style position ids start after the padding index, so two positions are unusable.
_POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "longformer": 2}
_FALLBACK_MAX_TOKENS = 512  # families with no position limit (XLNet): a sane serving cap


@dataclass
class LoadedModel:
    name: str
    model: transformers.PreTrainedModel
    tokenizer: transformers.PreTrainedTokenizerBase
    head: str | None  # "masked-lm" | "causal-lm" | "sequence-classification" | None
    kind: str  # "bidirectional" | "autoregressive"
    max_tokens: int
    device: torch.device  # where inputs go (the first shard's device)
    settings: Settings  # the archive's limits (defaults in a notebook)

    @property
    def config(self):
        return self.model.config

    @property
    def labels(self) -> list[str] | None:
        if self.head != "sequence-classification":
            return None
        return [self.config.id2label[i] for i in range(self.config.num_labels)]

    def details(self) -> dict:
        """The contract's `model` block."""
        cfg = self.config
        return {
            "name": self.name,
            "type": cfg.model_type,
            "architecture": type(self.model).__name__,
            "kind": self.kind,
            "n_layers": cfg.num_hidden_layers,
            "n_heads": cfg.num_attention_heads,
            "vocab_size": len(self.tokenizer),
            "max_tokens": self.max_tokens,
            "head": self.head,
            "predictions": {"masked-lm": "masked-token", "causal-lm": "next-token"}.get(self.head),
            "mask_token": self.tokenizer.mask_token,
            "labels": self.labels,
        }


def head_of(architecture: str | None) -> str | None:
    if not architecture:
        return None
    if architecture.endswith("ForMaskedLM"):
        return "masked-lm"
    if architecture.endswith(("ForCausalLM", "LMHeadModel")) and not architecture.startswith("XLNet"):
        return "causal-lm"
    if architecture.endswith("ForSequenceClassification"):
        return "sequence-classification"
    return None


def kind_of(config) -> str:
    model_type = config.model_type
    decoder_only = (
        model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
        and model_type != "xlnet"  # permutation LM: its plain forward attends both ways
    )
    return "autoregressive" if decoder_only or getattr(config, "is_decoder", False) else "bidirectional"


def max_tokens_of(config, tokenizer, settings: Settings) -> int:
    limits = []
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if positions and positions > 0:
        limits.append(positions - _POSITION_OFFSET.get(config.model_type, 0))
    if 0 < (tokenizer.model_max_length or 0) < 1_000_000:
        limits.append(tokenizer.model_max_length)
    model_limit = min(limits) if limits else _FALLBACK_MAX_TOKENS
    return min(settings.max_tokens, model_limit) if settings.max_tokens else model_limit


def load_model(
    model_dir: str | Path,
    name: str | None = None,
    settings: Settings | dict | None = None,
    device: str | torch.device = "cpu",
    device_map: dict | None = None,
) -> LoadedModel:
    """Load the class named in config.json (so an LM or classifier head comes with it).

    `name` defaults to the directory's name; `settings` are an archive's `handler:` block
    (a Settings or a dict); `device_map` (from `sharding.plan_device_map`) splits the layers
    over several devices.

    >>> model = load_model("build/models/sentiment")
    >>> model.head, model.labels
    ('sequence-classification', ['negative', 'positive'])
    """
    model_dir = Path(model_dir)
    settings = settings if isinstance(settings, Settings) else Settings.from_mapping(settings)
    config = AutoConfig.from_pretrained(model_dir)
    architecture = (config.architectures or [None])[0]
    model_class = getattr(transformers, architecture, None) if architecture else None
    model_class = model_class or AutoModel
    model = model_class.from_pretrained(
        model_dir, attn_implementation="eager", device_map=device_map
    )
    if device_map is None:
        model.to(device)
    model.eval().requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not tokenizer.is_fast:
        raise ValueError(f"{model_dir}: a fast tokenizer (tokenizer.json) is needed for offsets")
    first = next(model.parameters()).device
    return LoadedModel(
        name=name or model_dir.name,
        model=model,
        tokenizer=tokenizer,
        head=head_of(type(model).__name__),
        kind=kind_of(config),
        max_tokens=max_tokens_of(config, tokenizer, settings),
        device=first,
        settings=settings,
    )
