"""`continuation_baseline` "replace" against "keep" on SmolLM2, over 20 real prompts, in one run.

Each prompt's continuation is the model's own greedy one (`generate`, 4 new tokens, the same
ids in both modes). Per prompt and mode, `n_steps: "auto"` (Gauss–Kronrod, the default with a
continuation) at tolerance 0.01, capped at --max-n-steps gradients computed: the points of the
rule returned (`n_steps`; computed = 2 · points − 15), whether every row converged, seconds
(time.perf_counter around the call, greedy generation included: 4 cached forwards) and the
largest relative delta over rows, |δ_t| / |F_t(x) − F_t(x′)|. Gradients in float32 unless
--dtype bfloat16: bf16 autocast (native on a CPU with avx512_bf16) left keep's worst row 12% and 58% off
in a 2-prompt pilot at 495 gradients, where float32 reached 1.5% and 2.7%. Then how far the modes agree on
the prompt: per row t ≥ 1 (row 0 reads the prompt only, so both modes explain the same
function there), the Pearson correlation of the first n_prompt values and whether the prompt
token of largest |attribution| is the same; the median over rows, and the share. Then each
mode once at a fixed 16-point Gauss–Legendre rule: relative delta over all rows.

"replace": earlier target tokens start from the baseline along the path, like the prompt, so
row t splits F_t(x) − F_t(all baseline) over the prompt and y_<t. "keep": they stay themselves
(captum's LLMGradientAttribution), so row t splits F_t(x) − F_t(baseline prompt, real y_<t)
over the prompt only.

    flock /tmp/exformer-bench.lock nice -n 10 .venv/bin/python bench/continuation_baseline.py \
        --out /work/notes/replace-keep.md
    ... --limit 2 --max-n-steps 495          # a pilot: 2 prompts, a higher cap
    ... --compare-scores 2                   # also log_probability vs probability on 2 prompts

Not a test: prints Markdown tables (and writes them to --out).
"""

import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from exformer import explain_gradients, load_model  # noqa: E402
from exformer.contract.responses import relative_delta  # noqa: E402
from exformer.contract.settings import Settings  # noqa: E402
from table import code_version  # noqa: E402

PROMPTS = [  # (kind, prompt): 5–16 tokens each; continuations are the model's greedy 4 tokens
    ("fact", "The capital of France is"),
    ("fact", "Water boils at a temperature of"),
    ("fact", "The largest planet in our solar system is"),
    ("fact", "Who wrote the play Romeo and Juliet? The answer is"),
    ("fact", "The chemical symbol for gold is"),
    ("fact", "The first person to walk on the Moon was"),
    ("instruction", "Translate to French: Good morning, my friend.\nFrench:"),
    ("instruction", "Give me a synonym for happy:"),
    ("chat", "<|im_start|>user\nWhat is the capital of Japan?<|im_end|>\n<|im_start|>assistant\n"),
    ("chat", "<|im_start|>user\nName a primary color.<|im_end|>\n<|im_start|>assistant\n"),
    ("instruction", "Q: What is 7 times 8?\nA:"),
    ("instruction", "List three fruits: apples,"),
    ("story", "Once upon a time, in a small village, there lived"),
    ("story", "It was a dark and stormy night, and"),
    ("story", "The old man looked out at the sea and"),
    ("story", "She opened the letter and"),
    ("code", "def add(a, b):\n    return"),
    ("code", "for i in range(10):\n    print("),
    ("code", "import numpy as np\narr = np."),
    ("code", "SELECT name FROM users WHERE"),
]
MODES = ("replace", "keep")


def request(prompt: str, mode: str, args, score: str, fixed: int | None = None) -> dict:
    body = {
        "text": prompt,
        "generate": {"max_new_tokens": args.new_tokens},
        "continuation_baseline": mode,
        "score": score,
    }
    if fixed:
        return {**body, "n_steps": fixed, "method": "gausslegendre"}
    return {
        **body,
        "n_steps": "auto",
        "method": "gausskronrod",
        "tolerance": args.tolerance,
        "max_n_steps": args.max_n_steps,
    }


def rel(target: dict) -> float:
    value = relative_delta(target["convergence_delta"], target["score"], target["baseline_score"])
    return float("inf") if value is None else value


def run(lm, body: dict) -> dict:
    start = time.perf_counter()
    r = explain_gradients(lm, body)
    seconds = time.perf_counter() - start
    targets = r["targets"]
    return {
        "seconds": seconds,
        "points": r["n_steps"],
        "converged": r["converged"],
        "n_prompt": targets[0]["position"],
        "continuation": r["continuation"],
        "ids": [t["id"] for t in targets],
        "rel": [rel(t) for t in targets],
        "rows": [np.asarray(t["attributions"]["raw"], dtype=np.float64) for t in targets],
        "gap": [t["score"] - t["baseline_score"] for t in targets],
        "dtype": r["dtype"],
        "cap": r.get("max_n_steps"),  # where the answer says the cap it ran under
    }


def agreement(a: dict, b: dict) -> dict:
    """Prompt columns of rows t ≥ 1: Pearson r of each, and whether the top |value| is the same token."""
    n = a["n_prompt"]
    rs, same = [], []
    for ra, rb in list(zip(a["rows"], b["rows"]))[1:]:
        pa, pb = ra[:n], rb[:n]
        rs.append(float(np.corrcoef(pa, pb)[0, 1]) if pa.std() > 0 and pb.std() > 0 else float("nan"))
        same.append(int(np.abs(pa).argmax() == np.abs(pb).argmax()))
    # replace: the share of each row's |attribution| that falls on the earlier target tokens
    earlier = [float(np.abs(r[n:]).sum() / np.abs(r).sum()) for r in a["rows"][1:] if np.abs(r).sum() > 0]
    return {"r": rs, "same": same, "earlier": earlier}


def fmt_rel(x: float) -> str:
    return "inf" if x == float("inf") else f"{x:.1e}"


def cell(run_: dict) -> str:
    return (
        f"{run_['points']} | {2 * run_['points'] - 15} | {'yes' if run_['converged'] else '**no**'} | "
        f"{run_['seconds']:.1f} | {fmt_rel(max(run_['rel']))}"
    )


def one_line(text: str, width: int = 48) -> str:
    text = text.replace("<|im_start|>", "⟨s⟩").replace("<|im_end|>", "⟨e⟩").replace("\n", "⏎").replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def median(values) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=len(PROMPTS), help=f"prompts (default all {len(PROMPTS)})")
    parser.add_argument(
        "--max-n-steps",
        type=int,
        default=165,
        help="auto: most gradients computed, 15 + 30k (default 165, 90 points: 20 prompts "
        "then take ~25 min on one thread of a 2-core EPYC)",
    )
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--new-tokens", type=int, default=4, help="greedy continuation length")
    parser.add_argument("--score", default="probability", choices=["probability", "log_probability", "logit"])
    parser.add_argument("--fixed", type=int, default=16, help="the fixed Gauss–Legendre run's points (0: none)")
    parser.add_argument(
        "--compare-scores",
        type=int,
        default=0,
        metavar="N",
        help="also run the other of probability/log_probability (auto) on the first N prompts",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default=str(ROOT / "build/models/smollm2"))
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "auto"],
        help='the handler setting (default float32, as "auto"; bfloat16\'s gradient noise keeps 1%% out of reach)',
    )
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.code = code_version()  # the code this process imports: the tree as it is now
    command = " ".join([".venv/bin/python", "bench/continuation_baseline.py", *map(shlex.quote, sys.argv[1:])])
    began = time.perf_counter()

    # max_estimated_seconds: no refusal and no time-based cap on the refinement (the cap is max_n_steps)
    lm = load_model(
        args.model,
        settings={
            "dtype": args.dtype,
            "max_n_steps": max(500, args.max_n_steps),
            **({"max_estimated_seconds": 1e9} if "max_estimated_seconds" in Settings.model_fields else {}),
        },
    )
    explain_gradients(lm, {"text": "Hello there", "continuation": " friend", "n_steps": 2})  # warm-up
    prompts = PROMPTS[: args.limit]
    auto, fixed = [], []
    for i, (_kind, prompt) in enumerate(prompts):
        runs = {mode: run(lm, request(prompt, mode, args, args.score)) for mode in MODES}
        assert runs["replace"]["ids"] == runs["keep"]["ids"]
        auto.append(runs)
        if args.fixed:
            fixed.append({mode: run(lm, request(prompt, mode, args, args.score, args.fixed)) for mode in MODES})
        print(
            f"{i + 1}/{len(prompts)} {time.perf_counter() - began:.0f} s: "
            + ", ".join(f"{m} {r['points']} pts {r['seconds']:.1f} s conv={r['converged']}" for m, r in runs.items()),
            file=sys.stderr,
            flush=True,
        )
    other = "log_probability" if args.score == "probability" else "probability"
    scores = []
    for _kind, prompt in prompts[: args.compare_scores]:
        scores.append({mode: run(lm, request(prompt, mode, args, other)) for mode in MODES})
        print(
            f"{other}: {len(scores)}/{args.compare_scores} {time.perf_counter() - began:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    lines = report(args, command, prompts, auto, fixed, other, scores, time.perf_counter() - began)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


def report(args, command, prompts, auto, fixed, other, scores, wall) -> list[str]:
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
    out = [
        "# continuation_baseline: replace vs keep (SmolLM2-135M-Instruct)",
        "",
        f"- command: `{command}`",
        f"- machine: {cpu}, torch CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}, niceness {os.nice(0)}; "
        f"torch {torch.__version__}; "
        f"gradients dtype {auto[0]['replace']['dtype']} (setting {args.dtype})",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; code: {args.code}",
        f"- {len(prompts)} prompts, greedy continuation of {args.new_tokens} tokens (`generate`), baseline pad "
        f'(the default), score `{args.score}`, `n_steps: "auto"` gausskronrod, tolerance {args.tolerance}, '
        f"max_n_steps {args.max_n_steps} gradients computed; run wall time {wall / 60:.1f} min",
        f"- caps the answers report (`max_n_steps` in the summary, where the API gives one): "
        f"{sorted({str(r['cap']) for runs in auto for r in runs.values()})}",
        "- points = `n_steps` of the answer (the rule's points); grads = gradients computed (2 · points − 15); "
        "rel δ = max over rows of |convergence_delta| / |score − baseline_score|",
        "- agreement on rows t ≥ 1 (row 0 is the same function in both modes): r = median Pearson correlation "
        "of the prompt columns; top = share of rows whose prompt token of largest |attribution| is the same; "
        "earlier = median share of a replace row's |attribution| on the earlier target tokens",
        "",
    ]
    all_auto = [(m, r) for runs in auto for m, r in runs.items()]
    agree = [agreement(runs["replace"], runs["keep"]) for runs in auto]
    # summary
    out += [
        "## Summary",
        "",
        "| mode | median points | median grads | max points | converged | median max rel δ | "
        "rows within tol | total s | median s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in MODES:
        rs = [r for m, r in all_auto if m == mode]
        rows = [x for r in rs for x in r["rel"]]
        out.append(
            f"| {mode} | {median(r['points'] for r in rs):.0f} | {median(2 * r['points'] - 15 for r in rs):.0f} | "
            f"{max(r['points'] for r in rs)} | {sum(bool(r['converged']) for r in rs)}/{len(rs)} | "
            f"{fmt_rel(median(max(r['rel']) for r in rs))} | "
            f"{sum(x <= args.tolerance for x in rows)}/{len(rows)} | {sum(r['seconds'] for r in rs):.0f} | "
            f"{median(r['seconds'] for r in rs):.1f} |"
        )
    rs_all = [x for a in agree for x in a["r"]]
    same_all = [x for a in agree for x in a["same"]]
    earlier_all = [x for a in agree for x in a["earlier"]]
    out += [
        "",
        f"Agreement of the prompt columns, replace vs keep, over all {len(rs_all)} rows t ≥ 1: median Pearson r "
        f"{median(rs_all):.2f} (median of per-prompt medians {median(median(a['r']) for a in agree):.2f}; "
        f"r < 0.5 in {sum(x < 0.5 for x in rs_all)}, r < 0 in {sum(x < 0 for x in rs_all)}); same top prompt "
        f"token in {sum(same_all)}/{len(same_all)} rows. In replace rows t ≥ 1 the earlier target tokens carry a "
        f"median {100 * median(earlier_all):.0f}% of |attribution| (p90 "
        f"{100 * float(np.percentile(earlier_all, 90)):.0f}%).",
        "",
    ]
    gaps = {mode: [abs(g) for runs in auto for g in runs[mode]["gap"][1:]] for mode in MODES}
    out += [
        f"|F_t(x) − F_t(x′)| of rows t ≥ 1, median: replace {median(gaps['replace']):.3f}, "
        f"keep {median(gaps['keep']):.3f} (row 0 is the same in both).",
        "",
    ]
    # per prompt
    out += [
        "## Per prompt",
        "",
        "| # | kind | prompt | continuation | P+T | replace points | grads | conv | s | max rel δ | "
        "keep points | grads | conv | s | max rel δ | r (median) | top same | replace: earlier |",
        "|---:|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for i, ((kind, prompt), runs, a) in enumerate(zip(prompts, auto, agree)):
        rep = runs["replace"]
        out.append(
            f"| {i + 1} | {kind} | {one_line(prompt)} | {one_line(rep['continuation'], 24)} | "
            f"{rep['n_prompt']}+{len(rep['ids'])} | {cell(rep)} | {cell(runs['keep'])} | "
            f"{median(a['r']):.2f} | {sum(a['same'])}/{len(a['same'])} | {100 * median(a['earlier']):.0f}% |"
        )
    rep = [runs["replace"] for runs in auto]
    keep = [runs["keep"] for runs in auto]

    def summary(rs):
        return (
            f"{median(r['points'] for r in rs):.0f} | {median(2 * r['points'] - 15 for r in rs):.0f} | "
            f"{sum(bool(r['converged']) for r in rs)}/{len(rs)} | {sum(r['seconds'] for r in rs):.0f} (total) | "
            f"{fmt_rel(median(max(r['rel']) for r in rs))}"
        )

    out.append(
        f"| | **median / share / total** | | | | {summary(rep)} | {summary(keep)} | {median(rs_all):.2f} | "
        f"{sum(same_all)}/{len(same_all)} | {100 * median(earlier_all):.0f}% |"
    )
    # fixed
    if fixed:
        out += [
            "",
            f"## Fixed {args.fixed}-point Gauss–Legendre (each mode once per prompt)",
            "",
            "| mode | rows | median rel δ | p90 rel δ | max rel δ | rows within tol | total s |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for mode in MODES:
            rows = [x for runs in fixed for x in runs[mode]["rel"]]
            out.append(
                f"| {mode} | {len(rows)} | {fmt_rel(median(rows))} | {fmt_rel(float(np.percentile(rows, 90)))} | "
                f"{fmt_rel(max(rows))} | {sum(x <= args.tolerance for x in rows)}/{len(rows)} | "
                f"{sum(runs[mode]['seconds'] for runs in fixed):.0f} |"
            )
        for mode in MODES:
            row0 = [runs[mode]["rel"][0] for runs in fixed]
            later = [x for runs in fixed for x in runs[mode]["rel"][1:]]
            out.append(
                f"\n{mode}: row 0 median {fmt_rel(median(row0))} / max {fmt_rel(max(row0))}; rows t ≥ 1 "
                f"median {fmt_rel(median(later))} / max {fmt_rel(max(later))}."
            )
    # scores
    if scores:
        out += [
            "",
            f"## Score `{other}` vs `{args.score}` (auto, same cap, first {len(scores)} prompts)",
            "",
            f"| # | mode | {args.score}: points | conv | s | max rel δ | {other}: points | conv | s | max rel δ | "
            "r of prompt columns, all rows (median) |",
            "|---:|---|---:|---|---:|---:|---:|---|---:|---:|---:|",
        ]
        for i, (runs_o, runs) in enumerate(zip(scores, auto)):
            for mode in MODES:
                a, b = runs[mode], runs_o[mode]
                n = a["n_prompt"]
                r = median([float(np.corrcoef(x[:n], y[:n])[0, 1]) for x, y in zip(a["rows"], b["rows"])])
                out.append(
                    f"| {i + 1} | {mode} | {a['points']} | {'yes' if a['converged'] else '**no**'} | "
                    f"{a['seconds']:.1f} | {fmt_rel(max(a['rel']))} | {b['points']} | "
                    f"{'yes' if b['converged'] else '**no**'} | {b['seconds']:.1f} | {fmt_rel(max(b['rel']))} | "
                    f"{r:.2f} |"
                )
    return out


if __name__ == "__main__":
    main()
