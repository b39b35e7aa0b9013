"""Tiny random models of every family we promise, saved as real HF directories.

Weights are random (seeded), tokenizers are the real ones of the default models: WordPiece
(all-MiniLM) for the encoders, byte-level BPE (SmolLM2) for the decoders.
"""

from pathlib import Path

import torch
import transformers
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
WORDPIECE = ROOT / "build/models/minilm"
BPE = ROOT / "build/models/smollm2"

_ENCODER = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=128
)

_DECODER = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=64,
    max_position_embeddings=128,
)  # the decoders' (Llama's, and MORE_DECODERS')

# family → (config class, config kwargs, tokenizer dir, MLM/LM architecture)
FAMILIES = {
    "bert": ("BertConfig", _ENCODER, WORDPIECE, "BertForMaskedLM"),
    "roberta": ("RobertaConfig", {**_ENCODER, "max_position_embeddings": 130}, WORDPIECE, "RobertaForMaskedLM"),
    "distilbert": (
        "DistilBertConfig",
        dict(dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=128),
        WORDPIECE,
        "DistilBertForMaskedLM",
    ),
    "albert": ("AlbertConfig", {**_ENCODER, "embedding_size": 16}, WORDPIECE, "AlbertForMaskedLM"),
    "electra": ("ElectraConfig", {**_ENCODER, "embedding_size": 16}, WORDPIECE, "ElectraForMaskedLM"),
    "xlnet": ("XLNetConfig", dict(d_model=32, n_layer=2, n_head=4, d_inner=64), WORDPIECE, "XLNetLMHeadModel"),
    "gpt2": ("GPT2Config", dict(n_embd=32, n_layer=2, n_head=4, n_positions=128), BPE, "GPT2LMHeadModel"),
    "llama": ("LlamaConfig", _DECODER, BPE, "LlamaForCausalLM"),
}
# More decoder families, built as the others but not (yet) in FAMILIES' matrix: the AttnLRP oracle
# checks them (tests/test_attnlrp.py).
MORE_DECODERS = {
    "qwen2": ("Qwen2Config", _DECODER, BPE, "Qwen2ForCausalLM"),
    "qwen3": ("Qwen3Config", {**_DECODER, "head_dim": 8}, BPE, "Qwen3ForCausalLM"),
    "gemma3": ("Gemma3TextConfig", {**_DECODER, "head_dim": 8, "query_pre_attn_scalar": 8}, BPE, "Gemma3ForCausalLM"),
}
CLASSIFIERS = {
    family: arch.replace("ForMaskedLM", "ForSequenceClassification")
    .replace("LMHeadModel", "ForSequenceClassification")
    .replace("Gemma3ForCausalLM", "Gemma3TextForSequenceClassification")
    .replace("ForCausalLM", "ForSequenceClassification")
    for family, (_, _, _, arch) in {**FAMILIES, **MORE_DECODERS}.items()
}


def build(family: str, out: Path, classifier: bool = False) -> Path:
    """Save a tiny random `family` model (LM head, or a 2-label classifier) with its tokenizer."""
    config_name, kwargs, tokenizer_dir, lm_arch = {**FAMILIES, **MORE_DECODERS}[family]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    architecture = CLASSIFIERS[family] if classifier else lm_arch
    config = getattr(transformers, config_name)(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id or tokenizer.cls_token_id,
        eos_token_id=tokenizer.eos_token_id or tokenizer.sep_token_id,
        architectures=[architecture],
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
        **kwargs,
    )
    torch.manual_seed(0)
    model = getattr(transformers, architecture)(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
