"""Time explaining a continuation (one row per target token) against captum, in one run.

captum's LLMGradientAttribution(LayerIntegratedGradients) runs one attribution per target
token: a forward and a backward of all path points over prompt + y_<t, for each t. Ours
runs one forward per path point over prompt + targets and one backward per target on that
graph. Both attribute log p(y_t) to the word
embeddings of the prompt (earlier target tokens held at their own embedding: our
`continuation_baseline: "keep"`), from the same baseline, steps and method, on the same
model object with the same (SDPA) attention, so the rows must agree.

    .venv/bin/python bench/generation.py                 # SmolLM2, 10 target tokens
    .venv/bin/python bench/generation.py --count         # and each design's matrix multiply-adds
    .venv/bin/python bench/generation.py --baselines     # which prompt token leads each row

Not a test: prints Markdown tables (one run of each, side by side).
"""

import argparse
import copy
import dataclasses
import sys
import time
from pathlib import Path

import torch
from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput

from exformer import explain_gradients, load_model
from exformer.core.batching import attention_for_gradients
from exformer.core.options import PassOptions

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.matmul_work import MatmulWork  # noqa: E402

PROMPT = "The capital of France is"
CONTINUATION = " Paris, the city of light, love and art."


def targets_of(model, n: int) -> list[int]:
    ids = model.tokenizer(CONTINUATION, add_special_tokens=False)["input_ids"]
    if len(ids) < n:
        raise SystemExit(f"the continuation has only {len(ids)} tokens")
    return ids[:n]


def ours(model, targets: list[int], n_steps: int):
    text = model.tokenizer.decode(targets)
    start = time.perf_counter()
    out = explain_gradients(
        model,
        {
            "text": PROMPT,
            "continuation": text,
            "baseline": "pad",
            "n_steps": n_steps,
            "score": "log_probability",
            "continuation_baseline": "keep",
        },
    )
    seconds = time.perf_counter() - start
    assert [t["id"] for t in out["targets"]] == targets
    n_prompt = out["targets"][0]["position"]
    return seconds, torch.tensor([t["attributions"]["raw"][:n_prompt] for t in out["targets"]], dtype=torch.float64)


def captums(model, targets: list[int], n_steps: int, lm=None):
    tok, lm = model.tokenizer, lm or model.model
    llm = LLMGradientAttribution(LayerIntegratedGradients(lm, lm.get_input_embeddings()), tok)
    start = time.perf_counter()
    with attention_for_gradients(dataclasses.replace(model, model=lm)):  # the same attention our pass runs
        result = llm.attribute(
            TextTokenInput(PROMPT, tok, baselines=tok.pad_token_id),
            target=torch.tensor(targets),
            n_steps=n_steps,
            method="gausslegendre",
        )
    return time.perf_counter() - start, result.token_attr.double()


def work(model, targets: list[int], n_steps: int) -> None:
    """Matrix multiply-adds of each design, counted (not timed)."""
    with MatmulWork() as ours_work:
        ours(model, targets, n_steps)
    with MatmulWork() as captum_work:
        captums(model, targets, n_steps)
    print(
        f"matrix multiply-adds: captum {captum_work.total / 1e9:.1f} G, exformer {ours_work.total / 1e9:.1f} G "
        f"({captum_work.total / ours_work.total:.2f}x fewer)\n"
    )


def speed(model, args) -> None:
    targets = targets_of(model, args.targets)
    print(
        f"SmolLM2, {PROMPT!r} -> {model.tokenizer.decode(targets)!r} ({len(targets)} target tokens), "
        f"{args.n_steps} steps, gausslegendre, pad baseline, log p, torch threads {torch.get_num_threads()}\n"
    )
    ours(model, targets[:2], 2), captums(model, targets[:2], 2)  # first calls pay one-time costs: not timed
    full_s, _ = ours(dataclasses.replace(model, options=PassOptions(prefix_backward=False)), targets, args.n_steps)
    ours_s, ours_rows = ours(model, targets, args.n_steps)
    captum_s, captum_rows = captums(model, targets, args.n_steps)
    print("| implementation | seconds | speed-up |")
    print("|---|---:|---:|")
    print(f"| captum LLMGradientAttribution(LayerIntegratedGradients) | {captum_s:.1f} | 1.00x |")
    print(f"| exformer, each target's backward over the whole sequence | {full_s:.1f} | {captum_s / full_s:.2f}x |")
    print(f"| exformer, each target's backward over its own prefix | {ours_s:.1f} | {captum_s / ours_s:.2f}x |")
    print()
    if args.count:
        work(model, targets, args.n_steps)
    rows = {"exformer (float32)": ours_rows, "captum (float32)": captum_rows}
    if args.float64_reference:  # which of the two float32 answers is closer to the float64 one
        lm64 = copy.deepcopy(model.model).double()
        _, rows_64 = captums(model, targets, args.n_steps, lm=lm64)
        rows["captum (float64)"] = rows_64
    if args.float64_reference:
        print(
            "| row | target | exformer vs captum (float32) | exformer (float32) vs float64 "
            "| captum (float32) vs float64 |"
        )
        print("|---:|---|---:|---:|---:|")
        gap = lambda a, b: float((a - b).abs().max() / b.abs().max())  # noqa: E731
        for t, (a, b, c) in enumerate(zip(ours_rows, captum_rows, rows_64)):
            print(
                f"| {t} | {model.tokenizer.decode(targets[t])!r} | {gap(a, b):.1e} | {gap(a, c):.1e} "
                f"| {gap(b, c):.1e} |"
            )
        print()
    print("| max abs difference / max abs value of | " + " | ".join(rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    for name, a in rows.items():
        cells = [
            f"{float((a - b).abs().max() / b.abs().max()):.1e}" if name != other else "—" for other, b in rows.items()
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


def baselines(model, args) -> None:
    """Which prompt token leads each row, per baseline, plain and against the foil ' London'."""
    print(
        f"SmolLM2, {PROMPT!r} -> {CONTINUATION[:11]!r}, {args.n_steps} steps, score probability, "
        "earlier target tokens from the baseline too (the default)\n"
    )
    print("| baseline | foil | target | F(x) − F(x′) | leading prompt token | France | convergence delta |")
    print("|---|---|---|---:|---|---:|---:|")
    for name in ("pad", "zero", "unk"):
        for foil in (None, " London"):
            body = {"text": PROMPT, "continuation": CONTINUATION[:11], "baseline": name, "n_steps": args.n_steps}
            out = explain_gradients(model, {**body, **({"foil": foil} if foil else {})})
            words = [t["surface"] for t in out["tokens"]]
            n_prompt = out["targets"][0]["position"]
            for target in out["targets"]:
                raw = target["attributions"]["raw"][:n_prompt]
                lead = max(range(n_prompt), key=lambda i: raw[i])
                gap = target["score"] - target["baseline_score"]
                print(
                    f"| {name} | {foil or '—'!r} | {target['text']!r} | {gap:.3f} | {words[lead]!r} {raw[lead]:.3f} "
                    f"| {raw[3]:.3f} | {target['convergence_delta']:.3f} |",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=str(ROOT / "build/models/smollm2"))
    parser.add_argument("--targets", type=int, default=10)
    parser.add_argument("--n-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--no-float64-reference",
        dest="float64_reference",
        action="store_false",
        help="skip captum in float64 (how far each float32 answer is from it)",
    )
    parser.add_argument("--count", action="store_true", help="also count each design's matrix multiply-adds")
    parser.add_argument("--baselines", action="store_true", help="the baseline table instead of the timing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model_dir, "smollm2-gradients")
    (baselines if args.baselines else speed)(model, args)


if __name__ == "__main__":
    main()
