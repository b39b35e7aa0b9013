"""Served attention request vs the raw model forward, and what each encoding costs on the wire.

Needs a running TorchServe (bin/serve). Prints a table; put it in the README with the machine.
`--compare URL` also times a second TorchServe serving the same archive name (e.g. one built
from an older commit) in the same run, one server after the other at each length, against the
same raw forward.

    .venv/bin/python bench/attention.py [--model minilm-attention --model-dir build/models/minilm]
    .venv/bin/python bench/attention.py --compare http://127.0.0.1:28080 --tokens 128
"""

import argparse
import json
import os
import platform
import time
import urllib.error
import urllib.request
from pathlib import Path

import torch

from exformer.core.attention import attention_forward
from exformer.core.loading import load_model
from exformer.core.tokens import encode
from table import header

ROOT = Path(__file__).resolve().parent.parent


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def text_of(loaded, n_tokens: int) -> str:
    """A text that tokenizes to exactly n_tokens (special tokens included)."""
    n_special = len(loaded.tokenizer("")["input_ids"])
    text = " ".join(["word"] * (n_tokens - n_special))
    assert len(loaded.tokenizer(text)["input_ids"]) == n_tokens
    return text


def post(url: str, body: dict) -> bytes:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as r:
        return r.read()


def timed_or_refused(fn, runs):
    """(times, body), or (None, the 413 message) when the server refuses the response size."""
    try:
        return timed(fn, runs)
    except urllib.error.HTTPError as error:
        if error.code != 413:
            raise
        return None, json.loads(error.read())["message"]


def timed(fn, runs):
    times, result = [], None
    fn()  # warm-up
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inference", default="http://127.0.0.1:8080")
    parser.add_argument("--model", default="minilm-attention")
    parser.add_argument("--model-dir", default=str(ROOT / "build/models/minilm"))
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 128, 512])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the raw forward: the worker's (cores // maxWorkers)"
    )
    parser.add_argument("--compare", help="inference URL of a second TorchServe to time beside the first")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model(args.model_dir, args.model)
    url = f"{args.inference}/predictions/{args.model}"

    print(
        f"# {args.model}: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {args.runs} runs after a warm-up"
    )
    servers = {"served": url}
    if args.compare:
        servers = {"compared": f"{args.compare}/predictions/{args.model}", **servers}
    header(
        "server",
        "tokens",
        "raw forward p50 / p90 ms",
        "json p50 / p90 ms",
        "float16-base64 p50 / p90 ms",
        "json / raw",
        "json / f16",
        "f16 / raw",
        "json bytes",
        "float16-base64 bytes",
        text_columns=1,
    )

    def ms(ts):
        return f"{percentile(ts, 50) * 1e3:.1f} / {percentile(ts, 90) * 1e3:.1f}" if ts else "413 refused"

    def size(ts, body):
        return f"{len(body):,}" if ts else body.split(" response of ")[1].split(",")[0]

    def ratio(a, b):
        return f"{percentile(a, 50) / percentile(b, 50):.2f}" if a and b else "—"

    for n in args.tokens:
        text = text_of(loaded, n)
        encoded = encode(loaded, text)
        measured, raw = {}, []
        for label, server in servers.items():  # the raw forward again beside each server: the machine drifts
            raw += timed(lambda encoded=encoded: attention_forward(loaded, encoded.inputs), args.runs)[0]
            as_json, body_json = timed_or_refused(
                lambda server=server, text=text: post(server, {"text": text}), args.runs
            )
            f16, body_f16 = timed_or_refused(
                lambda server=server, text=text: post(server, {"text": text, "encoding": "float16-base64"}), args.runs
            )
            measured[label] = as_json, body_json, f16, body_f16
        raw += timed(lambda encoded=encoded: attention_forward(loaded, encoded.inputs), args.runs)[0]
        for label, (as_json, body_json, f16, body_f16) in measured.items():
            print(
                f"| {label} | {n} | {ms(raw)} | {ms(as_json)} | {ms(f16)} | {ratio(as_json, raw)} "
                f"| {ratio(as_json, f16)} | {ratio(f16, raw)} | {size(as_json, body_json)} | {size(f16, body_f16)} |"
            )


if __name__ == "__main__":
    main()
