"""Time explaining a chat model's answer by its sources: exformer against inseq, captum and MIT's
context-cite, each method in its own fresh process (SmolLM2-135M-Instruct, CPU).

Cases: "chat", a RAG conversation (a system line, a user turn of four short documents and a
question, ~430 prompt tokens after the chat template) and a fixed 12-token answer, with one
source per document (the first holds the answer); "short", "The capital of France is" ->
" Paris, the city of light." (7 tokens), plain text.

Methods (each in a fresh child: `torch.set_num_threads(--threads)`, the model loaded, one small
warm-up request (a 1-token continuation), then the one request timed):

    occlusion     exformer, "attribution": "occlusion" (unit source)                         chat
    contextcite   exformer, "attribution": "contextcite" (64 ablations + 16 held out)        chat
    ig_keep       exformer, integrated gradients, 16 steps gausslegendre, baseline pad, score
                  log_probability, "continuation_baseline": "keep" (only the prompt moves)   both
    ig_replace    the same with "continuation_baseline": "replace" (exformer's default)      both
    attnlrp       exformer, "attribution": "attnlrp": every target's row over its whole prefix
                  ("continuation_baseline": "replace"), F the target's logit               both
    attnlrp_whole the same, "rows": "whole" and score log_probability: the whole answer's
                  log p alone, one forward and one backward                                both
    dry_run       exformer's `dry_run: true` of ig_keep: its first call (one calibration pass
                  included); the other exformer rows show their own dry run's estimate       both
    inseq         inseq 0.7.1 integrated_gradients, 16 steps (captum's default gausslegendre:
                  `method` names inseq's method), attributed_fn probability with logprob,
                  on a transformers-loaded model (slow on chat: ~8 min)                      both
    captum        captum 0.9.0 LLMGradientAttribution(LayerIntegratedGradients) on the word
                  embeddings, TextTokenInput of the rendered prompt, 16 steps (slow on chat)  both
    lxt           lxt 2.1's efficient AttnLRP (bench/lxt_oracle.py: transformers 4.53.3 from
                  build/lxt-site, eager attention, float32): one forward, one backward per
                  target (timed: the rows; its extra backward of the whole answer's log p
                  is reported apart)                                                       both
    mit_contextcite  context-cite 0.0.1 `ContextCiter.get_attributions()`, 64 ablations, our
                  partition (one source per document), the answer set in its cache          chat

Baselines: every IG row interpolates the prompt's content tokens from the pad token
(<|im_end|>, id 2) and holds the chat template's tokens at themselves. inseq's own default would
be its unk token (<|endoftext|>, id 0) on every token but EOS, template tokens and earlier answer
tokens included (`HuggingfaceModel.encode`); `attribute()` drops a `baselines=` argument (with an
"Unused arguments" warning), so the child replaces `encode`'s baseline_ids
(`--inseq-baseline default` keeps inseq's). inseq feeds earlier answer tokens through the path
too: with our baseline they stay themselves ("keep"); with its default they move from unk (like
our "replace"). captum: pad on the content tokens
(the template tokens left out of TextTokenInput's interpretable mask, by position).

dtype: exformer's gradients run under its `dtype` setting, "auto" by default (float32 on every
machine); inseq, captum and context-cite run float32 too, where our IG (keep) equals inseq's and
captum's per prompt token (~1e-4; the script prints the gap). `--dtype bfloat16` runs ours under
bf16 autocast where the CPU has it natively. The figures on the benchmarks page were measured when
"auto" still meant bf16 on such a CPU.

Models: exformer's `load_model` (eager attention, SDPA for gradients); the others
`AutoModelForCausalLM.from_pretrained` (SDPA), `eval().requires_grad_(False)` as exformer does.

Memory: VmHWM of the child (its own peak RSS; `ru_maxrss` of a child also counts the parent's
pages it held between fork and exec); "during the request" resets VmHWM (/proc/self/clear_refs)
just before the request, so it is the request's peak with the model resident.

    .venv/bin/python bench/sources.py                                   # both cases, every method
    .venv/bin/python bench/sources.py --case chat --skip-slow           # no inseq/captum on chat
    .venv/bin/python bench/sources.py --case short --methods ig_keep,inseq,captum --dtype float32

inseq lives outside .venv (its pins would change it):
    .venv/bin/pip install --target build/inseq-site --no-deps inseq==0.7.1 jaxtyping==0.3.11 \\
        typeguard==2.13.3 treescope==0.1.10 wadler_lindig==0.1.8

Not a test: prints Markdown tables.
"""

import argparse
import datetime
import gc
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from table import code_version, header  # noqa: E402

MODEL_DIR = ROOT / "build" / "models" / "smollm2"
INSEQ_SITE = ROOT / "build" / "inseq-site"
LXT_SITE = ROOT / "build" / "lxt-site"
SPEC_DIR = ROOT / "build" / "bench-sources"
N_STEPS = 16
MIT_ABLATIONS = 64

SYSTEM = "You are a helpful assistant. Answer the question using only the documents below, in one sentence."
DOCUMENTS = {  # the first holds the answer; the second is a near miss (a ship raised in 1982)
    "vasa": "The Vasa was a Swedish warship built in Stockholm between 1626 and 1628 on the orders of King "
    "Gustavus Adolphus. She sank on her maiden voyage on 10 August 1628, less than a nautical mile from "
    "the shipyard, because she was too top-heavy. The wreck was located in 1956 and raised from the "
    "harbour on 24 April 1961. Today she is displayed in the Vasa Museum on the island of Djurgården.",
    "mary_rose": "The Mary Rose was a carrack of the English Tudor navy, launched in 1511 at Portsmouth. She served "
    "for more than thirty years before sinking in the Solent in July 1545 during a battle with a French "
    "invasion fleet. Divers found the hull in 1971, and the surviving part was lifted out of the water "
    "in October 1982. Her timbers were sprayed with polyethylene glycol for almost twenty years.",
    "cutty_sark": "The Cutty Sark is a British clipper ship launched on the River Leven in Scotland in 1869. Built "
    "for the tea trade with China, she later carried wool from Australia and was one of the fastest "
    "sailing ships of her time. She has been kept in a dry dock in Greenwich since 1954. A fire "
    "damaged her badly in 2007 while she was being restored.",
    "tickets": "Visitors to the maritime museums of Stockholm can buy a combined ticket at any museum entrance. The "
    "ticket is valid for seven days and includes a guided tour in English or Swedish every hour between "
    "10:00 and 16:00. Children under eighteen enter free of charge, and the cafés accept card payments "
    "only.",
}
QUESTION = "In which year was the Vasa raised from the harbour?"
QUERY_TEMPLATE = "{context}\n\nQuestion: {query}"  # the user turn, as context-cite's prompt_template
CONTEXT = "\n\n".join(f"Document {k + 1}: {text}" for k, text in enumerate(DOCUMENTS.values()))
MESSAGES = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": QUERY_TEMPLATE.format(context=CONTEXT, query=QUESTION)},
]
ANSWER = "The Vasa was raised in 1961."
ANSWER_TOKENS = 12
SHORT_PROMPT = "The capital of France is"
SHORT_CONTINUATION = " Paris, the city of light."
SHORT_TOKENS = 7

IG = {"n_steps": N_STEPS, "method": "gausslegendre", "baseline": "pad", "score": "log_probability"}
METHODS = {  # name: (row label, cases)
    "occlusion": ('exformer `"attribution": "occlusion"` (unit source)', ("chat",)),
    "contextcite": ('exformer `"attribution": "contextcite"` (64 + 16 held out)', ("chat",)),
    "ig_keep": ('exformer IG, `"continuation_baseline": "keep"`', ("chat", "short")),
    "ig_replace": ('exformer IG, `"continuation_baseline": "replace"`', ("chat", "short")),
    "dry_run": ("exformer `dry_run` of IG keep (first call: calibration included)", ("chat", "short")),
    "attnlrp": ('exformer `"attribution": "attnlrp"` (every row)', ("chat", "short")),
    "attnlrp_whole": (
        'exformer `"attribution": "attnlrp"`, `"rows": "whole"` (log p of the answer)',
        ("chat", "short"),
    ),
    "inseq": ("inseq 0.7.1 integrated_gradients", ("chat", "short")),
    "captum": ("captum 0.9.0 LLMGradientAttribution(LayerIntegratedGradients)", ("chat", "short")),
    "mit_contextcite": ("context-cite 0.0.1 ContextCiter (64 ablations)", ("chat",)),
    "lxt": ("lxt 2.1 efficient AttnLRP (transformers 4.53.3; every row)", ("chat", "short")),
}
OURS = ("occlusion", "contextcite", "ig_keep", "ig_replace", "dry_run", "attnlrp", "attnlrp_whole")
SLOW = ("inseq", "captum")


# --- the cases, prepared once by the parent (tokenizer only) ------------------------------------


def prepare(case: str, model_dir: Path) -> dict:
    """Prompt ids, which tokens the baseline holds fixed, the continuation's ids, each document's
    token positions and (chat) every ablated context: what the children need besides a model."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from exformer.core.prompts import chat_prompt
    from exformer.core.units import ablate_text

    tok = AutoTokenizer.from_pretrained(model_dir)
    if case == "short":
        ids = tok(SHORT_PROMPT)["input_ids"]
        continuation = tok(SHORT_CONTINUATION, add_special_tokens=False)["input_ids"]
        assert len(continuation) == SHORT_TOKENS, continuation
        specials = set(tok.all_special_ids)
        return {
            "case": case,
            "body": {"text": SHORT_PROMPT, "continuation": SHORT_CONTINUATION},
            "prompt_string": SHORT_PROMPT,
            "continuation": SHORT_CONTINUATION,
            "prompt_ids": list(ids),
            "fixed": [i in specials for i in ids],
            "continuation_ids": continuation,
            "documents": {},
            "pad_id": tok.pad_token_id,
        }
    prompt = chat_prompt(SimpleNamespace(tokenizer=tok, max_tokens=10**9), MESSAGES)
    templated = tok.apply_chat_template(MESSAGES, add_generation_prompt=True)
    templated = list(templated["input_ids"] if hasattr(templated, "keys") else templated)
    assert prompt.ids == templated, "exformer's prompt ids are not apply_chat_template's"
    assert 300 <= len(prompt.ids) <= 500, len(prompt.ids)
    continuation = tok(ANSWER, add_special_tokens=False)["input_ids"]
    assert len(continuation) == ANSWER_TOKENS, (len(continuation), ANSWER)
    user = MESSAGES[1]["content"]
    documents, spans = {}, []
    for name, text in DOCUMENTS.items():
        start = user.index(text)
        documents[name] = [
            k
            for k, span in enumerate(prompt.spans)
            if span is not None and span[0] == 1 and span[1] < start + len(text) and span[2] > start
        ]
        context_start = CONTEXT.index(text)
        spans.append((context_start, context_start + len(text)))
    n = len(spans)
    contexts = {
        "".join("1" if m >> k & 1 else "0" for k in range(n)):  # every subset kept, by mask bits
        ablate_text(CONTEXT, [s for k, s in enumerate(spans) if not m >> k & 1])
        for m in range(2**n)
    }
    return {
        "case": case,
        "body": {
            "messages": MESSAGES,
            "continuation": ANSWER,
            "sources": [{"id": name, "text": text} for name, text in DOCUMENTS.items()],
        },
        "prompt_string": tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True),
        "continuation": ANSWER,
        "prompt_ids": prompt.ids,
        "fixed": list(prompt.fixed),
        "continuation_ids": continuation,
        "documents": documents,
        "contexts": contexts,
        "pad_id": tok.pad_token_id,
    }


# --- the children ---------------------------------------------------------------------------------


def status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def reset_peak() -> bool:
    """Reset VmHWM to the present RSS (Linux 4.0+), so that it reads the next request's peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure(request, warm_up) -> tuple:
    """Warm up, then time `request` alone: (its answer, seconds and peaks in kB)."""
    warm_up()
    gc.collect()
    before = status_kb("VmHWM")  # the load's and the warm-up's peak
    reset = reset_peak()
    start = time.perf_counter()
    out = request()
    seconds = time.perf_counter() - start
    peak = status_kb("VmHWM")
    return out, {
        "seconds": seconds,
        "peak_request_kb": peak if reset else None,
        "peak_child_kb": max(before, peak),
        "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def ours_body(method: str, spec: dict) -> dict:
    body = dict(spec["body"])
    if method == "occlusion":
        return {**body, "attribution": "occlusion"}
    if method == "contextcite":
        return {**body, "attribution": "contextcite"}
    if method == "attnlrp":  # the logit of each target, every position of its prefix (as lxt)
        return {**body, "attribution": "attnlrp", "continuation_baseline": "replace"}
    if method == "attnlrp_whole":  # the whole answer's log p alone: one backward
        return {
            **body,
            "attribution": "attnlrp",
            "continuation_baseline": "replace",
            "rows": "whole",
            "score": "log_probability",
        }
    keep = method in ("ig_keep", "dry_run")
    return {**body, **IG, "continuation_baseline": "keep" if keep else "replace"}


def first_token_text(spec: dict, tokenizer) -> str:
    return tokenizer.decode(spec["continuation_ids"][:1])


def child_ours(method: str, spec: dict, args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from exformer import explain_gradients, load_model

    lm = load_model(args.model_dir, settings={"dtype": args.dtype})
    loaded = status_kb("VmRSS")
    body = ours_body(method, spec)
    start = time.perf_counter()
    estimate = explain_gradients(lm, {**body, "dry_run": True})  # a fresh worker's first estimate
    first = time.perf_counter() - start
    result = {
        "loaded_kb": loaded,
        "estimated_seconds": estimate["estimated_seconds"],
        "estimated_peak_bytes": estimate["estimated_peak_bytes"],
        "measured_from": estimate["measured_from"],
    }
    if method == "dry_run":
        start = time.perf_counter()
        explain_gradients(lm, {**body, "dry_run": True})
        again = time.perf_counter() - start
        return {
            **result,
            "seconds": first,
            "peak_child_kb": status_kb("VmHWM"),
            "peak_request_kb": None,
            "dtype": "—",
            "note": f"dry run: {first:.2f} s the first time (a calibration pass), {again * 1000:.0f} ms after",
        }
    warm = {**body, "continuation": first_token_text(spec, lm.tokenizer)}
    out, figures = measure(lambda: explain_gradients(lm, body), lambda: explain_gradients(lm, warm))
    assert [t["id"] for t in out["targets"]] == spec["continuation_ids"]
    whole = out.get("continuation_attributions")
    sources = whole if isinstance(whole, list) else (whole or {}).get("sources") or []
    per_position = whole["attributions"]["raw"][: len(spec["prompt_ids"])] if isinstance(whole, dict) else None
    return {
        **result,
        **figures,
        "sources": {s["id"]: s["attribution"] for s in sources},
        "score": out.get("score"),
        "per_position": per_position,
        "dtype": out.get("dtype") or "float32",
    }


def load_transformers(args):
    """The model as transformers loads it (SDPA attention, float32), frozen as exformer freezes it."""
    import torch

    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(args.model_dir)
    model.eval().requires_grad_(False)
    return model, AutoTokenizer.from_pretrained(args.model_dir)


def by_document(spec: dict, per_position) -> dict:
    """Sum a per-prompt-position attribution (already summed over the targets) over each document."""
    return {name: float(sum(per_position[k] for k in positions)) for name, positions in spec["documents"].items()}


def child_inseq(spec: dict, args) -> dict:
    sys.path.insert(0, str(INSEQ_SITE))  # first: inseq's pins (typeguard 2) before .venv's
    model, tok = load_transformers(args)
    import inseq
    import torch

    am = inseq.load_model(model, "integrated_gradients", tokenizer=tok)
    loaded = status_kb("VmRSS")
    prompt, n_prompt = spec["prompt_string"], len(spec["prompt_ids"])
    full = prompt + spec["continuation"]
    ids_prompt = am.encode(prompt).input_ids[0].tolist()
    ids_full = am.encode(full).input_ids[0].tolist()
    matched = ids_prompt == spec["prompt_ids"] and ids_full == spec["prompt_ids"] + spec["continuation_ids"]
    default = am.encode(full, return_baseline=True).baseline_ids[0].tolist()
    note = (
        f"token ids {'equal' if matched else 'DIFFER from'} the prompt's (chat: apply_chat_template's) + the "
        f"answer's (inseq tokenizes the rendered string, add_special_tokens=True, skip_special_tokens=False); "
    )
    if args.inseq_baseline == "ours":
        original = am.encode

        def encode(texts, *a, return_baseline=False, **kw):
            batch = original(texts, *a, return_baseline=return_baseline, **kw)
            if return_baseline:
                ids = batch.input_ids[0].tolist()
                base = [spec["pad_id"] if k < n_prompt and not spec["fixed"][k] else i for k, i in enumerate(ids)]
                batch.baseline_ids = torch.tensor([base], device=batch.input_ids.device)
            return batch

        am.encode = encode
        note += (
            f"baseline: pad id {spec['pad_id']} on the {spec['fixed'].count(False)} prompt content tokens, every "
            f"other token itself (template, earlier answer tokens: keep); inseq's default would be unk id "
            f"{tok.unk_token_id} on {sum(1 for i in default if i != tok.eos_token_id)} of {len(default)} tokens"
        )
    else:
        note += f"baseline: inseq's default, unk id {tok.unk_token_id} on every token but EOS (id {tok.eos_token_id})"

    def attribute(generated: str):
        return am.attribute(
            prompt,
            generated,
            n_steps=N_STEPS,
            attribute_target=False,
            attributed_fn="probability",
            logprob=True,
            show_progress=False,
        )

    warm = prompt + first_token_text(spec, tok)
    out, figures = measure(lambda: attribute(full), lambda: attribute(warm))
    attr = out.sequence_attributions[0].target_attributions  # [positions, targets(, embedding)]
    if attr.dim() == 3:
        attr = attr.sum(-1)
    per_position = attr[:n_prompt].nan_to_num().sum(1).tolist()
    shape = tuple(out.sequence_attributions[0].target_attributions.shape)
    return {
        "loaded_kb": loaded,
        **figures,
        "sources": by_document(spec, per_position),
        "ids_match": matched,
        "per_position": per_position,
        "note": f"{note}; target_attributions {shape} (summed over the embedding)",
    }


def child_captum(spec: dict, args) -> dict:
    model, tok = load_transformers(args)
    import torch
    from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput

    llm = LLMGradientAttribution(LayerIntegratedGradients(model, model.get_input_embeddings()), tok)
    loaded = status_kb("VmRSS")
    inp = TextTokenInput(spec["prompt_string"], tok, baselines=spec["pad_id"])
    matched = inp.inp_tensor[0].tolist() == spec["prompt_ids"]
    content = [k for k, fixed in enumerate(spec["fixed"]) if not fixed]
    if len(content) < len(spec["fixed"]) and matched:  # the template tokens stay themselves, by position
        mask = torch.tensor([[not fixed for fixed in spec["fixed"]]])
        inp.itp_mask, inp.itp_tensor = mask, inp.inp_tensor[mask].unsqueeze(0)
        inp.values = tok.convert_ids_to_tokens(inp.itp_tensor[0].tolist())
        inp.n_itp_features = len(inp.values)
    targets = torch.tensor(spec["continuation_ids"])

    def attribute(target):
        return llm.attribute(inp, target=target, n_steps=N_STEPS, method="gausslegendre")

    out, figures = measure(lambda: attribute(targets), lambda: attribute(targets[:1]))
    per_position = [0.0] * len(spec["prompt_ids"])
    for k, value in zip(content if inp.itp_mask is not None else range(len(per_position)), out.seq_attr.tolist()):
        per_position[k] = value
    return {
        "loaded_kb": loaded,
        **figures,
        "sources": by_document(spec, per_position),
        "ids_match": matched,
        "per_position": per_position,
        "note": f"token ids {'equal' if matched else 'DIFFER from'} the prompt's (chat: apply_chat_template's; "
        f"tokenizer.encode of the rendered string); baseline pad id {spec['pad_id']} on the {len(content)} "
        f"content tokens, the others out of TextTokenInput's interpretable mask (themselves)",
    }


def child_mit_contextcite(spec: dict, args) -> dict:
    model, tok = load_transformers(args)
    import numpy as np
    from context_cite import ContextCiter
    from context_cite.context_partitioner import BaseContextPartitioner

    loaded = status_kb("VmRSS")
    names, contexts = list(DOCUMENTS), spec["contexts"]

    class OurPartition(BaseContextPartitioner):  # one source per document, exformer's ablation rule
        num_sources = len(names)

        def split_context(self):
            pass

        def get_source(self, index):
            return DOCUMENTS[names[index]]

        def get_context(self, mask=None):
            mask = np.ones(len(names), bool) if mask is None else mask
            return contexts["".join("1" if keep else "0" for keep in mask)]

    class WithSystem(ContextCiter):  # the package renders one user turn; ours has a system line first
        def _get_prompt_ids(self, mask=None, return_prompt=False):
            user = self.prompt_template.format(context=self.partitioner.get_context(mask), query=self.query)
            rendered = self.tokenizer.apply_chat_template(
                [MESSAGES[0], {"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
            )
            ids = self.tokenizer.encode(rendered, add_special_tokens=False)
            return (ids, rendered) if return_prompt else ids

    def citer(answer: str, n: int):
        cc = WithSystem(
            model,
            tok,
            CONTEXT,
            QUESTION,
            partitioner=OurPartition(CONTEXT),
            prompt_template=QUERY_TEMPLATE,
            num_ablations=n,
        )
        _, rendered = cc._get_prompt_ids(return_prompt=True)
        cc._cache["output"] = rendered + answer  # skip its generation: explain our answer
        return cc

    cc = citer(ANSWER, MIT_ABLATIONS)
    matched = cc._get_prompt_ids() == spec["prompt_ids"] and cc._response_ids == spec["continuation_ids"]
    warm = citer(first_token_text(spec, tok), 4)
    out, figures = measure(lambda: cc.get_attributions(verbose=False), lambda: warm.get_attributions(verbose=False))
    return {
        "loaded_kb": loaded,
        **figures,
        "sources": dict(zip(names, map(float, out))),
        "ids_match": matched,
        "score": "logit_probability (its log p − log(1 − p))",
        "note": f"prompt and answer ids {'equal' if matched else 'DIFFER from'} ours; forwards one prompt at a "
        f"time (its batch_size 1), Lasso on {MIT_ABLATIONS} masks, no held-out fit",
    }


def child_lxt(spec: dict, args) -> dict:
    import lxt_oracle

    lxt_oracle.setup_site(LXT_SITE)  # before transformers: 4.53.3 from the site
    import torch

    torch.set_num_threads(args.threads)
    model, _ = lxt_oracle.load_model(args.model_dir, json.loads((args.model_dir / "config.json").read_text()), "causal")
    loaded = status_kb("VmRSS")
    case = {"prompt_ids": spec["prompt_ids"], "target_ids": spec["continuation_ids"]}
    warm = {**case, "target_ids": spec["continuation_ids"][:1]}
    out, figures = measure(
        lambda: lxt_oracle.run_causal(case, model, args.model_dir),
        lambda: lxt_oracle.run_causal(warm, model, args.model_dir),
    )
    forward, backwards = out["seconds"]["forward"], out["seconds"]["backward"]
    rows, whole = backwards[:-1], backwards[-1]
    n_prompt = len(spec["prompt_ids"])
    summed = [sum(row[i] for row in out["relevance"] if i < len(row)) for i in range(n_prompt)]
    return {
        "loaded_kb": loaded,
        **figures,
        "seconds": forward + sum(rows),  # the rows, as ours: one forward, one backward per target
        "per_position": summed,
        "dtype": "float32",
        "note": f"forward {forward:.2f} s + {len(rows)} backwards {sum(rows):.2f} s; the whole answer's "
        f"log p is one more backward, {whole:.2f} s (forward + it: {forward + whole:.2f} s); peaks include it",
    }


def child(args) -> None:
    spec = json.loads(Path(args.spec).read_text())
    if args.child in OURS:
        result = child_ours(args.child, spec, args)
    else:
        result = globals()[f"child_{args.child}"](spec, args)
    print("RESULT " + json.dumps(result), flush=True)


# --- the parent -----------------------------------------------------------------------------------


def run_child(method: str, spec_path: Path, args) -> dict:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        method,
        "--spec",
        str(spec_path),
        "--model-dir",
        str(args.model_dir),
        "--threads",
        str(args.threads),
        "--inseq-baseline",
        args.inseq_baseline,
        "--dtype",
        args.dtype,
    ]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "TQDM_DISABLE": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "PYTHONWARNINGS": "ignore",
    }
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"exit {done.returncode}: {tail[:300]}", "wall": wall}
    return {**json.loads(lines[-1][len("RESULT ") :]), "wall": wall}


def gb(kb) -> str:
    return "—" if kb is None else f"{kb / 1024**2:.2f}"


def leading(sources: dict) -> str:
    if not sources:
        return "—"
    name = max(sources, key=sources.get)
    return f"{name}"


def report_case(case: str, spec: dict, rows: dict) -> None:
    n_prompt, n_t = len(spec["prompt_ids"]), len(spec["continuation_ids"])
    what = (
        (
            f"a RAG conversation: {n_prompt} prompt tokens after the chat template ({spec['fixed'].count(False)} "
            f"content), answer {spec['continuation']!r} ({n_t} tokens), sources {', '.join(DOCUMENTS)} "
            f"(the answer is in vasa)"
        )
        if case == "chat"
        else f"{spec['prompt_string']!r} ({n_prompt} tokens) -> {spec['continuation']!r} ({n_t} tokens)"
    )
    print(f"\n## {case}: {what}\n")
    columns = (
        ["method"]
        + (["leading source"] if case == "chat" else [])
        + ["dtype"]
        + [
            "seconds",
            "peak RSS during the request, GB",
            "child's peak RSS, GB",
            "RSS after load, GB",
            "our estimate, s",
            "our estimate, peak GB",
        ]
    )
    header(*columns, text_columns=3 if case == "chat" else 2)
    for method, r in rows.items():
        label = METHODS[method][0]
        if "error" in r:
            print(f"| {label} | failed: {r['error']} |" + " |" * (len(columns) - 2))
            continue
        estimate = r.get("estimated_peak_bytes")
        lead = [leading(r.get("sources") or {})] if case == "chat" else []
        cells = [
            label,
            *lead,
            r.get("dtype", "float32"),
            f"{r['seconds']:.2f}",
            gb(r.get("peak_request_kb")),
            gb(r.get("peak_child_kb")),
            gb(r.get("loaded_kb")),
            f"{r['estimated_seconds']:.2f}" if "estimated_seconds" in r else "",
            f"{estimate / 1024**3:.2f}" if estimate else "",
        ]
        print("| " + " | ".join(cells) + " |", flush=True)
    scored = {m: r for m, r in rows.items() if r.get("sources")}
    if case == "chat" and scored:  # what each method gives each document, summed over the answer's tokens
        print()
        header("method", "score", *DOCUMENTS, text_columns=2)
        for method, r in scored.items():
            values = " | ".join(f"{r['sources'].get(d, float('nan')):.3f}" for d in DOCUMENTS)
            print(f"| {METHODS[method][0]} | {r.get('score', 'log_probability')} | {values} |")
    print()
    ratios = [
        ("inseq", "ig_keep"),
        ("inseq", "ig_replace"),
        ("captum", "ig_keep"),
        ("captum", "ig_replace"),
        ("mit_contextcite", "contextcite"),
    ]
    for theirs, ours in ratios:
        a, b = rows.get(theirs), rows.get(ours)
        if a and b and "error" not in a and "error" not in b:
            peak = (
                f", {a['peak_request_kb'] / b['peak_request_kb']:.2f}x the peak RSS during the request"
                if a.get("peak_request_kb") and b.get("peak_request_kb")
                else ""
            )
            print(f"- {theirs} / {ours}: {a['seconds'] / b['seconds']:.1f}x the seconds{peak}")
    ours, theirs = (rows.get(m) or {} for m in ("attnlrp", "lxt"))
    if ours.get("per_position") and theirs.get("per_position"):  # the same AttnLRP rows, summed
        scale = max(abs(x) for x in theirs["per_position"]) or 1.0
        gap = max(abs(a - b) for a, b in zip(ours["per_position"], theirs["per_position"])) / scale
        print(
            f"- lxt / attnlrp: {theirs['seconds'] / ours['seconds']:.2f}x the seconds; rows summed per prompt token, "
            f"max |ours − lxt| / max |lxt| = {gap:.1e}"
        )
    reference = (rows.get("ig_keep") or {}).get("per_position")
    if reference:  # the same integrated gradients (keep) should give the same numbers per prompt token
        scale = max(abs(x) for x in reference) or 1.0
        gaps = [
            f"{method} {max(abs(a - b) for a, b in zip(r['per_position'], reference)) / scale:.1e}"
            for method, r in rows.items()
            if method != "ig_keep" and r.get("per_position")
        ]
        if gaps:
            print(
                f"- per prompt token (summed over the answer), max |difference| / max |ig_keep| (ig_keep in "
                f"{rows['ig_keep']['dtype']}; the same computation agrees to ~1e-4 in float32): " + ", ".join(gaps)
            )
    for method, r in rows.items():
        if r.get("note"):
            print(f"- {method}: {r['note']}")
    print(flush=True)


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("torch", "transformers", "captum", "context-cite"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} missing")
    inseq = next(INSEQ_SITE.glob("inseq-*.dist-info"), None)
    found.append(f"inseq {inseq.name[6:-10]} (build/inseq-site)" if inseq else "inseq missing (build/inseq-site)")
    return ", ".join(found)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument("--case", choices=["short", "chat", "both"], default="both")
    parser.add_argument(
        "--methods", default=",".join(METHODS), help=f"a comma-separated subset of {', '.join(METHODS)} (default: all)"
    )
    parser.add_argument("--skip-slow", action="store_true", help="no inseq and captum on the chat case (~8 min each)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads in every child")
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="exformer's gradients dtype setting (auto: float32); inseq, captum and context-cite run float32",
    )
    parser.add_argument(
        "--inseq-baseline",
        choices=["ours", "default"],
        default="ours",
        help="ours: pad on the prompt's content tokens; default: inseq's unk on all but EOS",
    )
    parser.add_argument("--child", choices=list(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; pick from {', '.join(METHODS)}")
    if "inseq" in methods and not (INSEQ_SITE / "inseq").exists():
        parser.error("inseq is not in build/inseq-site: see the install command in --help")

    import torch

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    command = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])
    print(
        "# Explaining a chat model's answer by its sources: exformer, inseq, captum, context-cite "
        "(SmolLM2-135M-Instruct)\n"
    )
    print(f"- command: `{command}`")
    print(
        f"- machine: {cpu}, torch CPU capability {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores; "
        f"torch threads {args.threads} in every child; niceness {os.nice(0)}; load average (1, 5, 15 min) "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
        + " at the start (others' processes share the cores)"
    )
    print(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; code: {code_version()}")
    print(f"- {versions()}")
    print(
        f"- each method in a fresh process: model load, dry run (exformer), a 1-token warm-up, then the one "
        f"request timed; IG: {N_STEPS} steps gausslegendre, pad on the prompt's content tokens, log p; exformer's "
        f"dtype setting {args.dtype!r}",
        flush=True,
    )
    SPEC_DIR.mkdir(parents=True, exist_ok=True)
    for case in ["short", "chat"] if args.case == "both" else [args.case]:
        spec = prepare(case, args.model_dir)
        spec_path = SPEC_DIR / f"{case}.json"
        spec_path.write_text(json.dumps(spec))
        rows = {}
        for method in methods:
            if case not in METHODS[method][1] or (args.skip_slow and case == "chat" and method in SLOW):
                continue
            print(f"[{case}] {method} ...", file=sys.stderr, flush=True)
            rows[method] = run_child(method, spec_path, args)
            print(
                f"[{case}] {method}: {rows[method].get('seconds', rows[method].get('error'))} "
                f"(child wall {rows[method]['wall']:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        report_case(case, spec, rows)
    print("- load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
