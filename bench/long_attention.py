"""Attention of long prompts: what each form of the answer costs, in the worker's own code.

For each model and length, each form of the attention request runs once through
`exformer.explain.attention.attention_response` and is encoded as the worker sends it (`json_bytes`),
on `--threads` torch threads (a worker's: cores // maxWorkers = 1 here). Printed: the wall
time, the response size (or the 413 the archive answers, with its estimate, computed
without a forward), the process's peak RSS above its RSS before the request (VmHWM, reset
through /proc/self/clear_refs), and for sparse rows the least and the mean fraction of its
mass a row kept. The text: English prose (Python's reference manual), cut to the length.

"before" is the code this replaced: every layer's maps held (output_attentions), stacked,
then the asked layer selected; it answers the same bytes as "1 layer, all heads".

    flock /tmp/exformer-bench.lock .venv/bin/python bench/long_attention.py --tokens 512 1024
    flock /tmp/exformer-bench.lock .venv/bin/python bench/long_attention.py --tokens 2048 --models smollm2
"""

import argparse
import ctypes
import gc
import os
import platform
import time
from pathlib import Path

import orjson
import torch
import transformers

from exformer.contract import AttentionRequest
from exformer.contract.arrays import decode_rows
from exformer.contract.errors import RequestError
from exformer.contract.settings import Settings
from exformer.core.attention import attention_forward
from exformer.core.loading import load_model
from exformer.explain import parse_request
from exformer.explain.attention import attention_response, top_k_predictions
from exformer.explain.encoding import encode_array, json_bytes
from table import header

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"smollm2": ROOT / "build/models/smollm2", "minilm": ROOT / "build/models/minilm"}
F16 = {"encoding": "float16-base64"}
FORMS = {  # label → request fields beside the text
    "all layers, all heads, json": {},
    "all layers, all heads, f16": F16,
    "before: 1 layer, all heads, f16": None,  # the replaced code path
    "1 layer, all heads, f16": "last layer",
    "heads mean, f16": {"heads": "mean", **F16},
    "heads mean, top 32/row, f16": {"heads": "mean", "top_k_per_row": 32, **F16},
    "rollout only, top 32/row, f16": {"rollout": "only", "top_k_per_row": 32, **F16},
    "heads mean + rollout, top 32/row, f16": {"heads": "mean", "rollout": True, "top_k_per_row": 32, **F16},
}
LIBC = ctypes.CDLL("libc.so.6")


def status(field: str) -> int:
    """A /proc/self/status field in bytes."""
    line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def measured(fn):
    """(result, seconds, peak RSS above the RSS at the start)."""
    gc.collect()
    LIBC.malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    start_rss, start = status("VmRSS"), time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return result, seconds, status("VmHWM") - start_rss


def prose() -> str:
    """English prose the same on every machine of this Python: the reference manual's topics."""
    from pydoc_data.topics import topics

    return " ".join(" ".join(topics[key].split()) for key in sorted(topics))


def text_of(loaded, n_tokens: int) -> str:
    """The first n_tokens tokens of `prose()` (special tokens included), as text."""
    n_special = len(loaded.tokenizer("")["input_ids"])
    text = prose()
    offsets = loaded.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    end = offsets[n_tokens - n_special - 1][1]
    while len(loaded.tokenizer(text[:end])["input_ids"]) > n_tokens:
        end -= 1
    return text[:end]


def before(loaded, request) -> bytes:
    """The replaced path: all layers' maps kept and stacked, then the asked layers selected."""
    from exformer.core.tokens import encode, token_table

    encoded = encode(loaded, request.text)
    attention, logits = attention_forward(loaded, encoded.inputs)
    tokens = token_table(loaded, encoded, request.text, None)
    predictions = top_k_predictions(loaded, logits, 5) if loaded.head in ("masked-lm", "causal-lm") else None
    for row in tokens:
        row["predictions"] = predictions[row["index"]] if predictions else None
    block = {
        "layers": request.layers,
        "heads": list(range(attention.shape[1])),
        **encode_array(attention[request.layers], request.encoding),
    }
    return json_bytes({"model": loaded.details(), "tokens": tokens, "attention": block})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--tokens", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--forms", nargs="+", default=list(FORMS), choices=list(FORMS))
    parser.add_argument(
        "--before-limit-gib",
        type=float,
        default=4.0,
        help="skip the replaced path where it would hold more (a shared machine)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads: a worker's (cores // maxWorkers)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()  # the prose is longer than any model: we cut it
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} thread(s), one run each after a short warm-up; response limit "
        f"{Settings().max_response_bytes / 2**20:.0f} MiB"
    )
    header(
        "model",
        "tokens",
        "request",
        "time s",
        "response bytes",
        "peak RSS + MiB",
        "kept: least, mean (attention / rollout)",
        text_columns=3,
    )
    for name in args.models:
        loaded = load_model(MODELS[name], name, Settings(max_tokens=max(args.tokens)))
        parse_request(loaded, AttentionRequest, {"text": "warm up"})
        attention_response(
            loaded, parse_request(loaded, AttentionRequest, {"text": "warm up", "heads": "mean", "rollout": True})
        )
        last = loaded.config.num_hidden_layers - 1
        for n in args.tokens:
            if n > loaded.max_tokens:
                print(f"| {name} | {n} | (longer than the model's {loaded.max_tokens} tokens) | | | | |")
                continue
            text = text_of(loaded, n)
            for label in args.forms:
                fields = FORMS[label]
                fields = {"layers": [last], **F16} if fields in (None, "last layer") else fields
                request = parse_request(loaded, AttentionRequest, {"text": text, **fields})
                if isinstance(request, RequestError):
                    raise request
                if FORMS[label] is None:
                    need = 2 * loaded.config.num_hidden_layers * loaded.config.num_attention_heads * n * n * 4
                    if need > args.before_limit_gib * 2**30 or _available() < 1.5 * need + 2**30:
                        print(f"| {name} | {n} | {label} | not run: it holds ~{need / 2**30:.1f} GiB | | | |")
                        continue
                    body, seconds, peak = measured(lambda loaded=loaded, request=request: before(loaded, request))
                    print(
                        f"| {name} | {n} | {label} | {seconds:.1f} | {len(body):,} | {peak / 2**20:,.0f} | |",
                        flush=True,
                    )
                    continue
                try:
                    body, seconds, peak = measured(
                        lambda loaded=loaded, request=request: json_bytes(attention_response(loaded, request))
                    )
                except RequestError as error:
                    if error.code != 413:
                        raise
                    size = error.message.split("response of about ")[1].split(",")[0]
                    print(f"| {name} | {n} | {label} | | 413 (about {size}) | | |", flush=True)
                    continue
                response = orjson.loads(body)
                kept = " / ".join(_kept(response.get(k)) for k in ("attention", "rollout"))
                print(
                    f"| {name} | {n} | {label} | {seconds:.1f} | {len(body):,} | {peak / 2**20:,.0f} | {kept} |",
                    flush=True,
                )
                del response, body
        del loaded


def _kept(block) -> str:
    """ "least, mean" fraction of its row's mass a sparse block kept; "-" for dense blocks."""
    if not block or block["encoding"] != "topk-per-row":
        return "-"
    rows = decode_rows(block)
    fraction = rows["kept"] / (rows["kept"] + rows["rest"])
    return f"{block['min_kept_fraction']:.2f}, {fraction.mean():.3f}"


def _available() -> int:
    line = next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemAvailable:"))
    return int(line.split()[1]) * 1024


if __name__ == "__main__":
    main()
