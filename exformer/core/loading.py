"""Hugging Face model directory → a model ready to explain (eager attention, eval, placed).

transformers' model classes are imported when a model is loaded, not with this module: they
pull torch._dynamo, inductor's config and sympy (~84 MB per process), which a worker that has
not loaded its model yet, or a client, does not need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch

from ..contract.settings import Settings
from .options import PassCounters, PassOptions, Speed

if TYPE_CHECKING:
    import transformers

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
    native_bfloat16: bool = False  # the device computes bf16 natively (probed at load)
    options: PassOptions = field(default_factory=PassOptions)  # the passes' speed-ups (benchmarks switch them)
    counters: PassCounters = field(default_factory=PassCounters)  # what the passes did (metrics read it)
    speed: Speed = field(default_factory=Speed)  # this worker's measured speed (cost estimates: core.cost)

    @property
    def config(self):
        return self.model.config

    @property
    def embedding(self) -> torch.nn.Embedding:
        """The word-embedding layer: where every gradient method's x and x' live."""
        return cast(torch.nn.Embedding, self.model.get_input_embeddings())

    @property
    def default_dtype(self) -> str:
        """What a gradients request computes in unless it asks: the `dtype` setting, "auto" being
        float32 on every device (bf16 autocast only where the archive or the request asks for it)."""
        return "float32" if self.settings.dtype == "auto" else self.settings.dtype

    def dtype_for(self, asked: str | None = None) -> str:
        """What a gradients request that asks for `asked` (its `dtype`, None: the default) computes in."""
        return asked or self.default_dtype

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
            "predictions": {"masked-lm": "masked-token", "causal-lm": "next-token"}.get(self.head or ""),
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
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = config.model_type
    decoder_only = (
        model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
        and model_type != "xlnet"  # permutation LM: its plain forward attends both ways
    )
    return "autoregressive" if decoder_only or getattr(config, "is_decoder", False) else "bidirectional"


CPUINFO = Path("/proc/cpuinfo")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # x86 flags of bf16 matrix/dot instructions


def bfloat16_not_native(device: torch.device) -> str | None:
    """Why bf16 autocast would be emulated on `device` (None: it is native).

    CPU: torch must dispatch to its AVX-512 kernels and the CPU must have AMX or AVX512-BF16;
    without them bf16 autocast measured 34x slower than float32 (docs/benchmarks.md).
    """
    device = torch.device(device)
    if device.type == "cuda":
        return None if torch.cuda.is_bf16_supported() else f"{torch.cuda.get_device_name(device)} has no native bf16"
    if device.type != "cpu":
        return f"bf16 autocast is not measured on {device.type}"
    capability = torch.backends.cpu.get_cpu_capability()
    try:
        flags = {
            f
            for line in CPUINFO.read_text().splitlines()
            if line.startswith("flags")
            for f in line.split(":", 1)[1].split()
        }
    except OSError:
        flags = set()
    if "AVX512" in capability and flags & set(NATIVE_BF16_FLAGS):
        return None
    return (
        f"this CPU has no native bf16 (torch CPU capability {capability}; "
        f"none of {', '.join(NATIVE_BF16_FLAGS)} in {CPUINFO})"
    )


def check_dtype(settings: Settings, device: torch.device) -> bool:
    """Whether bf16 is native on `device`; ValueError if the settings ask for bf16 where it is not."""
    why = bfloat16_not_native(device)
    if settings.dtype == "bfloat16" and why:
        raise ValueError(
            f"handler setting 'dtype': bfloat16 needs native bf16, but {why}: emulated bf16 "
            f'autocast measured ~34x slower than float32; use "auto" or "float32"'
        )
    return why is None


def _compute_device(device, device_map: dict | None) -> torch.device:
    """Where the first layers run: the device, or a device map's first entry ("disk" and the
    like offload to the CPU)."""
    first = next(iter(device_map.values())) if device_map else device
    try:
        return torch.device(first)
    except (RuntimeError, TypeError):
        return torch.device("cpu")


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
    import transformers
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    model_dir = Path(model_dir)
    settings = settings if isinstance(settings, Settings) else Settings.from_mapping(settings)
    native_bfloat16 = check_dtype(settings, _compute_device(device, device_map))
    config = AutoConfig.from_pretrained(model_dir)
    architecture = (config.architectures or [None])[0]
    model_class = getattr(transformers, architecture, None) if architecture else None
    model_class = model_class or AutoModel
    model = model_class.from_pretrained(model_dir, attn_implementation="eager", device_map=device_map)
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
        native_bfloat16=native_bfloat16,
    )
