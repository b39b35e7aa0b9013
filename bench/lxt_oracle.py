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
bitsandbytes, open_clip_torch, ...) are not needed by lxt.efficient (a missing zennit only warns).

Run:

    .venv/bin/python bench/lxt_oracle.py --site build/lxt-site --case CASE.json --out OUT.json
        [--model-dir DIR] [--logits] [--threads 1]

Cases (JSON):

    {"model": "smollm2", "prompt_ids": [...], "target_ids": [...]}      causal LM
    {"model": "sentiment", "input_ids": [...], "target": 0}             sequence classifier
    {"model_dir": "/any/dir", "prompt_ids": [...], "target_ids": [...]}
    {"model_dir": "/any/dir", "input_ids": [...], "target": 1,
     "attention_mask": [...], "token_type_ids": [...]}                   (both optional: ones / zeros)

"model" is a shortcut for build/models/smollm2 or build/models/sentiment (scripts/prepare_models.py,
scripts/train_sentiment.py); "model_dir" (or --model-dir) is any directory saved by .venv's
transformers 5 whose config.json has a model_type lxt 2.1 has a patch map for (FAMILIES): llama,
qwen2, qwen3, gemma3_text, gpt2 with causal LM heads (*ForCausalLM, GPT2LMHeadModel) or
*ForSequenceClassification heads, and bert with BertForSequenceClassification. The case picks the
head: target_ids / target_text a causal LM, target a classifier; the weights must match it exactly
(no missing, unexpected or mismatched keys). Without ids, "prompt"/"target_text" or "text" are
tokenized here with transformers 4.53 from the dir's tokenizer.json (BertTokenizerFast for bert,
else PreTrainedTokenizerFast).

Loading: lxt's default patch map for the family's modeling module is applied (and checked: every
patched class method is lxt's function, the attention functions are lxt's wrappers, BERT's classes
are lxt's copy, each patched class is used by the model), then the model with eager attention,
float32, eval(), parameters frozen. The config.json is converted in memory for 4.53
(`convert_config`; the model directory is never written): dtype -> torch_dtype; rope_parameters ->
rope_theta (+ rope_scaling when its rope_type is not default); Gemma3's per-layer-type
rope_parameters -> rope_theta (full_attention) and rope_local_base_freq (sliding_attention).
layer_types, sliding_window, use_sliding_window, max_window_layers, query_pre_attn_scalar and the
soft-caps have the same names and meanings in 4.53 and pass as they are. 4.53 has no text-only
Gemma3 classifier: `gemma3_text_classifier` is transformers 5's (text model + bias-free score).

Causal LM: one forward over prompt + targets[:-1] (inputs_embeds, requires_grad), then one backward
per target t of its logit at position len(prompt)-1+t; row t is the relevance
(inputs_embeds * inputs_embeds.grad).sum(-1) of positions 0 .. len(prompt)-1+t (later positions get
exactly 0 under the causal mask, so they are left out). Then one more backward of the whole
answer's sum_t log p(target_t) (a plain log_softmax over lxt's logits), over every input position.
Classifier: one forward and one backward of the target class logit, a row over all input tokens
(decoders: the logits of the last position, as transformers does given inputs_embeds; token_type_ids
are passed to BERT only).

Output JSON: the tokens, the relevance rows, the target logits (and log-probs; --logits: every
position's logits too), each row's sum (conservation: sum ~ logit), the config conversions made, and
wall seconds of the forward + backwards (model load excluded).
"""

import argparse
import functools
import importlib
import importlib.metadata
import json
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIRS = {"smollm2": ROOT / "build/models/smollm2", "sentiment": ROOT / "build/models/sentiment"}

# config.json's model_type -> (transformers.models.<package>, causal LM class, classifier class), the
# families lxt 2.1's lxt.efficient.models has a patch map for. 4.53 has no text-only Gemma3
# classifier: `gemma3_text_classifier` builds one.
FAMILIES = {
    "llama": ("llama", "LlamaForCausalLM", "LlamaForSequenceClassification"),
    "qwen2": ("qwen2", "Qwen2ForCausalLM", "Qwen2ForSequenceClassification"),
    "qwen3": ("qwen3", "Qwen3ForCausalLM", "Qwen3ForSequenceClassification"),
    "gemma3_text": ("gemma3", "Gemma3ForCausalLM", None),
    "gpt2": ("gpt2", "GPT2LMHeadModel", "GPT2ForSequenceClassification"),
    "bert": ("bert", None, "BertForSequenceClassification"),
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


def convert_config(raw: dict) -> tuple[dict, list[str]]:
    """A converted copy of a config.json written by transformers 5, as 4.53 reads it (the model
    directory is never written), and what was converted."""
    config, notes = json.loads(json.dumps(raw)), []
    if "dtype" in config:
        config["torch_dtype"] = config.pop("dtype")
        notes.append("dtype -> torch_dtype")
    if config.get("use_bidirectional_attention"):
        sys.exit("use_bidirectional_attention: 4.53's Gemma3 is causal only")
    rope = config.pop("rope_parameters", None)
    if rope is not None:
        rope = dict(rope)
        if "full_attention" in rope or "sliding_attention" in rope:  # Gemma3: one per layer type
            local = dict(rope.get("sliding_attention") or {})
            if local.get("rope_type", "default") != "default":
                sys.exit(f"rope_parameters {rope}: 4.53's Gemma3 gives sliding layers default RoPE only")
            if "rope_theta" in local:
                config["rope_local_base_freq"] = local["rope_theta"]
                notes.append("rope_parameters.sliding_attention.rope_theta -> rope_local_base_freq")
            rope = dict(rope.get("full_attention") or {})
            notes.append("rope_parameters.full_attention -> rope_theta / rope_scaling")
        else:
            notes.append("rope_parameters -> rope_theta / rope_scaling")
        if "rope_theta" in rope:
            config["rope_theta"] = rope.pop("rope_theta")
        if "partial_rotary_factor" in rope:
            config["partial_rotary_factor"] = rope.pop("partial_rotary_factor")
        if rope.get("rope_type", "default") != "default":
            config["rope_scaling"] = rope
    return config, notes


def gemma3_text_classifier(modeling):
    """transformers 5's Gemma3TextForSequenceClassification, absent from 4.53: the text model and a
    bias-free score layer (weights `model.*`, `score.weight`), read at the last position (the
    generic classifier's choice when given inputs_embeds)."""
    import torch
    from transformers.modeling_outputs import SequenceClassifierOutput

    class Gemma3TextForSequenceClassification(modeling.Gemma3PreTrainedModel):
        config_class = modeling.Gemma3TextConfig
        base_model_prefix = "model"

        def __init__(self, config):
            super().__init__(config)
            self.num_labels = config.num_labels
            self.model = modeling.Gemma3TextModel(config)
            self.score = torch.nn.Linear(config.hidden_size, config.num_labels, bias=False)
            self.post_init()

        def get_input_embeddings(self):
            return self.model.embed_tokens

        def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, **kwargs):
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, use_cache=False
            ).last_hidden_state
            return SequenceClassifierOutput(logits=self.score(hidden[:, -1]))

    return Gemma3TextForSequenceClassification


def patch(modeling) -> dict:
    """Apply lxt's default AttnLRP patch map to the modeling module; exit unless every entry took."""
    from lxt.efficient import monkey_patch
    from lxt.efficient.models import get_default_map
    from lxt.efficient.patches import replace_module

    patch_map = get_default_map(modeling)
    monkey_patch(modeling, patch_map)
    for target, fn in patch_map.items():
        if isinstance(target, type):  # partial(patch_method, new_fn[, method_name=...])
            method = fn.keywords.get("method_name", "forward")
            ok, what = getattr(target, method) is fn.args[0], f"{target.__name__}.{method}"
        elif isinstance(fn, functools.partial) and fn.func is replace_module:  # BERT: lxt's copy of the module
            what = f"{modeling.__name__} classes"
            copies = {k: v for k, v in vars(fn.args[0]).items() if isinstance(v, type) and k.startswith("Bert")}
            ok = all(getattr(modeling, k) is v for k, v in copies.items())
        else:  # patch_attention: the module's eager (and every other) attention function wrapped
            what = f"{modeling.__name__}.eager_attention_forward"
            ok = modeling.eager_attention_forward.__qualname__.startswith("wrap_attention_forward")
        if not ok:
            sys.exit(f"lxt's patch did not take: {what}")
    return patch_map


def load_model(model_dir: Path, raw: dict, head: str):
    """The model in 4.53 with lxt's patches: eager attention, float32, eval, parameters frozen."""
    import torch

    model_type = raw.get("model_type")
    if model_type not in FAMILIES:
        sys.exit(f"model_type {model_type!r}: lxt 2.1 covers {sorted(FAMILIES)} here")
    package, causal_name, classifier_name = FAMILIES[model_type]
    modeling = importlib.import_module(f"transformers.models.{package}.modeling_{package}")
    patch_map = patch(modeling)
    if head == "causal":
        if causal_name is None:
            sys.exit(f"{model_type}: a causal LM is not supported here (BERT: classifiers only)")
        cls = getattr(modeling, causal_name)
    elif classifier_name is None:
        cls = gemma3_text_classifier(modeling)
    else:
        cls = getattr(modeling, classifier_name)  # after patching: BERT's is lxt's copy
    converted, notes = convert_config(raw)
    config = cls.config_class.from_dict(converted)
    model, info = cls.from_pretrained(
        model_dir,
        config=config,
        torch_dtype=torch.float32,
        attn_implementation="eager",
        output_loading_info=True,
    )
    bad = {k: v for k, v in info.items() if v}
    if bad:
        sys.exit(f"{cls.__name__} from {model_dir}: {bad}")
    assert model.config._attn_implementation == "eager"
    used = {type(m) for m in model.modules()}
    for target in patch_map:
        if isinstance(target, type) and target.__module__ == modeling.__name__ and target not in used:
            sys.exit(f"{target.__name__} is patched but {cls.__name__} does not use it")
    stale = sorted({t.__name__ for t in used if t.__module__ == "transformers.models.bert.modeling_bert"})
    if stale:
        sys.exit(f"unpatched BERT classes in the model: {stale}")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, notes


def relevance_row(embeds, upto=None):
    row = (embeds * embeds.grad).float().sum(-1)[0]
    return (row if upto is None else row[:upto]).tolist()


def tokenizer(model_dir: Path, model_type: str):
    from transformers import BertTokenizerFast, PreTrainedTokenizerFast

    kind = BertTokenizerFast if model_type == "bert" else PreTrainedTokenizerFast
    return kind(tokenizer_file=str(model_dir / "tokenizer.json"))


def run_causal(case: dict, model, model_dir: Path, all_logits: bool = False) -> dict:
    import torch

    if "prompt_ids" not in case:
        tok = tokenizer(model_dir, model.config.model_type)
        case = dict(
            case,
            prompt_ids=tok(case["prompt"], add_special_tokens=False).input_ids,
            target_ids=tok(case["target_text"], add_special_tokens=False).input_ids,
        )
    prompt, targets = list(case["prompt_ids"]), list(case["target_ids"])
    if not prompt or not targets:
        sys.exit("prompt_ids and target_ids must not be empty")
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
    extra = {"logits": logits[0].detach().tolist()} if all_logits else {}
    return {
        **extra,
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


def run_classifier(case: dict, model, model_dir: Path, all_logits: bool = False) -> dict:
    import torch

    model_type = model.config.model_type
    if "input_ids" not in case:
        case = dict(case, input_ids=tokenizer(model_dir, model_type)(case["text"]).input_ids)
    ids = torch.tensor([list(case["input_ids"])])
    target = int(case["target"])
    kwargs = {"attention_mask": torch.tensor([case["attention_mask"]]) if "attention_mask" in case else None}
    if kwargs["attention_mask"] is None:
        kwargs["attention_mask"] = torch.ones_like(ids)
    if model_type == "bert":  # (GPT-2 would ADD embeddings of token_type_ids: never passed there)
        kwargs["token_type_ids"] = torch.tensor([case.get("token_type_ids") or [0] * ids.shape[1]])

    t0 = time.perf_counter()
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    logits = model(inputs_embeds=embeds, **kwargs).logits[0]  # decoders: the last position's
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
    parser.add_argument("--logits", action="store_true", help="causal LM: also every position's logits")
    args = parser.parse_args()
    if not (args.site / "lxt").is_dir():
        sys.exit(f"{args.site}: no lxt there (see this file's docstring)")
    setup_site(args.site)
    warnings.filterwarnings("ignore", message=".*zennit.*")

    import torch
    import transformers

    torch.set_num_threads(args.threads)
    case = json.loads(args.case.read_text())
    model_dir = args.model_dir or case.get("model_dir") or DEFAULT_DIRS.get(case.get("model", ""))
    if model_dir is None or not (Path(model_dir) / "config.json").exists():
        sys.exit(f"no model at {model_dir} (give a model_dir, or model: {sorted(DEFAULT_DIRS)})")
    model_dir = Path(model_dir)
    name = case.get("model") or model_dir.name
    if any(k in case for k in ("target_ids", "target_text")):
        head, run = "causal", run_causal
    elif "target" in case:
        head, run = "classifier", run_classifier
    else:
        sys.exit("a case names target_ids / target_text (causal LM) or target (classifier)")
    raw = json.loads((model_dir / "config.json").read_text())
    model, conversions = load_model(model_dir, raw, head)
    result = run(case, model, model_dir, args.logits)
    result = {
        "model": name,
        "model_dir": str(model_dir),
        "model_type": raw["model_type"],
        "architecture": type(model).__name__,
        "head": head,
        "config_conversions": conversions,
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
        f"{name} ({result['architecture']}): logits {[round(x, 4) for x in lg]} relevance sums "
        f"{[round(x, 4) for x in s]} seconds {result['seconds']['total']:.3f} -> {args.out}"
    )


if __name__ == "__main__":
    main()
