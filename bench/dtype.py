"""float32 against bf16 autocast (a request's `dtype`), side by side, in one run.

What a request's `"dtype": "bfloat16"` buys and costs where bf16 is native: seconds per request
and completeness, on the sentiment classifier (held-out Rotten Tomatoes reviews, as
bench/adaptive.py; 50 Gauss–Legendre points, pad baseline, F = p(predicted class)) and on
SmolLM2-135M-Instruct (a short chat answer, every answer token a row; 64 Gauss–Legendre points,
pad baseline, log p, `continuation_baseline` keep). Completeness is how much of F(x) − F(x′)
the attributions fail to account for, |δ| / |F(x) − F(x′)| (the response's `convergence_delta`
over its score gap; a continuation row's `relative_delta`), and how many reviews (rows) are within
1%: the same points in both dtypes, so what bf16 adds to it is rounding. Also how far bf16's
attributions are from float32's, max |Δ| / max |float32| per review (per row for SmolLM2). The
two dtypes alternate request by request after a warm-up of each; seconds are time.perf_counter
around explain_gradients (in-process, the handler's code without TorchServe).

Where bf16 is not native (torch's CPU capability is not AVX-512, or the CPU has neither
avx512_bf16 nor amx_bf16) the model refuses bf16 requests, and only float32 is measured.

    flock /tmp/exformer-bench.lock .venv/bin/python bench/dtype.py                 # ~3 min on 2 cores
    flock /tmp/exformer-bench.lock .venv/bin/python bench/dtype.py --reviews 4 --skip-chat

Not a test: prints the machine and a Markdown table.
"""

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from adaptive import held_out  # noqa: E402
from exformer import explain_gradients, load_model  # noqa: E402
from exformer.core.loading import CPUINFO, NATIVE_BF16_FLAGS, bfloat16_not_native  # noqa: E402
from table import code_version, header  # noqa: E402

MESSAGES = [{"role": "user", "content": "What is the capital of France, and what is it known for?"}]
ANSWER = "The capital of France is Paris."


def machine() -> str:
    text = CPUINFO.read_text() if CPUINFO.exists() else ""
    name = next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), platform.processor()
    )
    flags = {f for ln in text.splitlines() if ln.startswith("flags") for f in ln.split(":", 1)[1].split()}
    present = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in NATIVE_BF16_FLAGS)
    return (
        f"{name}; torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}; "
        f"{present} in {CPUINFO}; {torch.get_num_threads()} threads"
    )


def timed(model, body: dict) -> tuple[float, dict]:
    start = time.perf_counter()
    out = explain_gradients(model, body)
    return time.perf_counter() - start, out


def sentiment(args, dtypes: list[str]) -> dict:
    model = load_model(ROOT / "build/models/sentiment", "sentiment")
    texts = held_out(args.reviews)
    base = {"baseline": "pad", "n_steps": args.steps, "method": "gausslegendre"}
    for dtype in dtypes:
        explain_gradients(model, {"text": texts[0], **base, "n_steps": 4, "dtype": dtype})  # warm-up
    seconds, complete, apart = {d: [] for d in dtypes}, {d: [] for d in dtypes}, []
    for text in texts:
        attributions = {}
        for dtype in dtypes:
            s, out = timed(model, {"text": text, **base, "dtype": dtype})
            assert out["dtype"] == dtype
            gap = out["target"]["score"] - out["baseline"]["score"]
            seconds[dtype].append(s)
            complete[dtype].append(abs(out["convergence_delta"]) / abs(gap) if gap else float("inf"))
            attributions[dtype] = np.array(out["attributions"]["raw"])
        if "bfloat16" in attributions:
            a, b = attributions["float32"], attributions["bfloat16"]
            apart.append(float(np.abs(b - a).max() / np.abs(a).max()))
    return {
        "seconds": seconds,
        "complete": complete,
        "apart": apart,
        "case": f"sentiment (MiniLM-L6), {len(texts)} held-out reviews, {args.steps} points",
    }


def chat(args, dtypes: list[str]) -> dict:
    model = load_model(ROOT / "build/models/smollm2", "smollm2")
    body = {
        "messages": MESSAGES,
        "continuation": ANSWER,
        "baseline": "pad",
        "n_steps": args.chat_steps,
        "method": "gausslegendre",
        "score": "log_probability",
        "continuation_baseline": "keep",
    }
    for dtype in dtypes:
        explain_gradients(model, {**body, "continuation": " Paris", "n_steps": 2, "dtype": dtype})  # warm-up
    seconds, complete, rows = {d: [] for d in dtypes}, {d: [] for d in dtypes}, {}
    for _ in range(args.chat_repeats):
        for dtype in dtypes:
            s, out = timed(model, {**body, "dtype": dtype})
            assert out["dtype"] == dtype
            seconds[dtype].append(s)
            complete[dtype] = [t["relative_delta"] for t in out["targets"] if t["relative_delta"] is not None]
            rows[dtype] = [np.array(t["attributions"]["raw"][: t["position"]]) for t in out["targets"]]
    apart = (
        [float(np.abs(b - a).max() / np.abs(a).max()) for a, b in zip(rows["float32"], rows["bfloat16"])]
        if "bfloat16" in rows
        else []
    )
    n_prompt, n_t = out["targets"][0]["position"], len(out["targets"])
    return {
        "seconds": seconds,
        "complete": complete,
        "apart": apart,
        "case": f"SmolLM2-135M-Instruct chat, {n_prompt} prompt + {n_t} answer tokens ({n_t} rows), "
        f"{args.chat_steps} points",
    }


def report(result: dict, dtypes: list[str]) -> None:
    print(f"\n{result['case']}\n")
    header(
        "dtype",
        "s/request (median)",
        "|δ| / |F(x) − F(x′)| median",
        "max",
        "within 1%",
        "max |Δ| / max |float32| median",
        "max",
        text_columns=1,
    )
    for dtype in dtypes:
        c = result["complete"][dtype]
        apart = result["apart"] if dtype == "bfloat16" else []
        far = f"{statistics.median(apart):.1e} | {max(apart):.1e}" if apart else "— | —"
        print(
            f"| {dtype} | {statistics.median(result['seconds'][dtype]):.2f} | {statistics.median(c):.1e} | "
            f"{max(c):.1e} | {sum(v <= 0.01 for v in c)} of {len(c)} | {far} |"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=10, help="held-out reviews for the sentiment model (default 10)")
    parser.add_argument("--steps", type=int, default=50, help="sentiment: Gauss-Legendre points (default 50)")
    parser.add_argument("--chat-steps", type=int, default=64, help="SmolLM2: Gauss-Legendre points (default 64)")
    parser.add_argument("--chat-repeats", type=int, default=1, help="SmolLM2: timed requests per dtype (default 1)")
    parser.add_argument("--skip-chat", action="store_true")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    why = bfloat16_not_native(torch.device("cpu"))
    dtypes = ["float32"] + (["bfloat16"] if why is None else [])
    print(f"{datetime.date.today()}, code {code_version()}\n{machine()}")
    print(
        "bf16 is native here: float32 and bfloat16 side by side"
        if why is None
        else f"bf16 is not native here ({why}): float32 only"
    )
    report(sentiment(args, dtypes), dtypes)
    if not args.skip_chat:
        report(chat(args, dtypes), dtypes)


if __name__ == "__main__":
    main()
