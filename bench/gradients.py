"""Time the one-pass gradients engine against the old two-pass design, in one run.

The old int-gradients-server ran captum's LayerIntegratedGradients and then a second
pass (its LayerIntermediateGradients) for the per-step gradients, each with all path
points in one batch. Ours takes the per-step gradients from one chunked pass and sums them.
Both attribute the same F (softmax probability of class 1) to the word-embedding output,
from the old server's baseline (pad at every position), so their IG must agree.

    .venv/bin/python bench/gradients.py                  # 3 examples x 128 tokens
    .venv/bin/python bench/gradients.py --tokens 512     # the old trial's shape
    .venv/bin/python bench/gradients.py --model-dir build/models/sentiment
    .venv/bin/python bench/gradients.py --bert-base --examples 1 --repeats 1 --profile

Also the machine's side: FLOPs of each design counted with torch.utils.flop_counter, the
achieved GFLOP/s, and its fraction of a GEMM microbenchmark at the model's own matmul shapes
(the linear layers' forward and input-gradient GEMMs at the one pass's chunk), timed in the
same run, interleaved with the designs. `--profile` prints a torch.profiler table of one
request of the one pass.

Not a test: prints a table (best of --repeats, designs interleaved).
"""

import argparse
import dataclasses
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from captum._utils.gradient import _forward_layer_eval
from captum.attr import LayerIntegratedGradients
from captum.attr._utils.approximation_methods import approximation_parameters
from torch.utils import flop_counter
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, BertConfig
from transformers.utils import logging as hf_logging

import exformer
import exformer.core.batching
from exformer import GradientsRequest, LoadedModel, RequestError, Settings
from exformer.core.batching import default_chunk_points
from exformer.core.loading import head_of, kind_of
from exformer.core.options import PassOptions
from exformer.core.tokens import encode
from exformer.explain import parse_request
from exformer.explain.dispatch import explain_batch

ROOT = Path(__file__).resolve().parent.parent

TARGET = 1  # the old server's target: the "positive" class


def load_classifier(model_dir: Path, max_tokens: int) -> LoadedModel:
    """The model dir's classifier, or (an encoder without a head) a seeded random 2-label head."""
    config = AutoConfig.from_pretrained(model_dir)
    has_head = head_of((config.architectures or [""])[0]) == "sequence-classification"
    torch.manual_seed(0)
    hf_logging.set_verbosity_error()  # the random head's "newly initialized" report
    hf_logging.disable_progress_bar()
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, attn_implementation="eager", **({} if has_head else {"num_labels": 2})
    )
    model.eval().requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return LoadedModel(
        name=model_dir.name,
        model=model,
        tokenizer=tokenizer,
        head="sequence-classification",
        kind=kind_of(config),
        max_tokens=max_tokens,
        device=torch.device("cpu"),
        settings=Settings(),
    )


def bert_base(tokenizer_dir: Path, max_tokens: int) -> LoadedModel:
    """A BERT-base-shaped classifier (12 layers, 768 wide, 3072 FFN), seeded random weights,
    with the WordPiece tokenizer of `tokenizer_dir`: the issue's shape, nothing downloaded."""
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = BertConfig(vocab_size=len(tokenizer), num_labels=2, pad_token_id=tokenizer.pad_token_id)
    config._attn_implementation = "eager"
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation="eager")
    model.eval().requires_grad_(False)
    return LoadedModel(
        name="bert-base (random)",
        model=model,
        tokenizer=tokenizer,
        head="sequence-classification",
        kind="bidirectional",
        max_tokens=max_tokens,
        device=torch.device("cpu"),
        settings=Settings(),
    )


def make_texts(tokenizer, n: int, n_tokens: int, seed: int = 0) -> list[str]:
    """n texts of random whole words, long enough to be cut at n_tokens."""
    words = sorted(w for w in tokenizer.get_vocab() if w.isalpha() and w.isascii() and len(w) > 2)
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(n_tokens)) for _ in range(n)]


def two_pass(loaded, text: str, n_steps: int, method: str):
    """The old design: LayerIntegratedGradients, then LayerIntermediateGradients' pass."""
    model, tokenizer = loaded.model, loaded.tokenizer
    encoded = encode(loaded, text)  # cut at loaded.max_tokens
    ids = encoded.inputs["input_ids"]
    extra = tuple(v for k, v in encoded.inputs.items() if k != "input_ids")
    names = [k for k in encoded.inputs if k != "input_ids"]
    baseline_ids = torch.full_like(ids, tokenizer.pad_token_id)
    layer = model.get_input_embeddings()

    def forward(input_ids, *rest):
        return model(input_ids=input_ids, **dict(zip(names, rest))).logits.softmax(-1)

    ig = LayerIntegratedGradients(forward, layer).attribute(
        ids, baseline_ids, additional_forward_args=extra, target=TARGET, n_steps=n_steps, method=method
    )
    # second pass, as the old LayerIntermediateGradients: layer outputs at x and x', then
    # every path point in one batch, forward and backward again
    x = _forward_layer_eval(forward, ids, layer, additional_forward_args=extra)[0]
    b = _forward_layer_eval(forward, baseline_ids, layer, additional_forward_args=extra)[0]
    step_sizes_of, alphas_of = approximation_parameters(method)
    alphas, step_sizes = alphas_of(n_steps), torch.tensor(step_sizes_of(n_steps))
    scaled = torch.cat([b + a * (x - b) for a in alphas]).requires_grad_()
    handle = layer.register_forward_hook(lambda *_: scaled)
    try:
        with torch.enable_grad():
            out = forward(ids.expand(n_steps, -1), *(e.expand(n_steps, -1) for e in extra))[:, TARGET]
            (grads,) = torch.autograd.grad(torch.unbind(out), scaled)
    finally:
        handle.remove()
    return ig[0], {"intermediate_gradients": grads, "step_sizes": step_sizes, "intermediates": scaled.detach()}


def one_pass(
    loaded,
    texts: list[str],
    n_steps: int,
    method: str,
    dtype: str,
    batched: bool,
    chunk: int | None = None,
    head_position_only: bool = True,
    attention: str = "eager",
):
    """Our engine; `batched`: all texts in one call, their path points sharing chunks;
    `chunk`: path points per forward (None: by length); `head_position_only`: the last layer at
    the classifier's position only (False: the whole last layer, as before)."""
    # the engine reads loaded.settings
    options = PassOptions(
        head_position_only=head_position_only, gradient_attention={**PassOptions().gradient_attention, "cpu": attention}
    )
    loaded = dataclasses.replace(loaded, settings=Settings(dtype=dtype, internal_batch_size=chunk), options=options)
    requests = [
        validated(
            loaded,
            {
                "text": t,
                "target": TARGET,
                "baseline": "pad",
                "baseline_specials": "replace",
                "n_steps": n_steps,
                "method": method,
                "format": "torch-gzip",
                "return": ["attributions", "intermediate_gradients", "step_sizes", "intermediates"],
            },
        )
        for t in texts
    ]
    groups = [requests] if batched else [[r] for r in requests]
    results = [r for group in groups for r in explain_batch(loaded, group)]
    for r in results:
        if isinstance(r, RequestError):
            raise r
        r.tensors()  # materialise what the old server returned
    return [r.path.integrated_gradients for r in results]


def validated(loaded, body: dict) -> GradientsRequest:
    """The request as the server would validate it against this model."""
    request = parse_request(loaded, GradientsRequest, body)
    if isinstance(request, RequestError):
        raise request
    return request


def _cpu_sdpa(query, key, value, *args, out_shape=None, **kwargs):
    return flop_counter.sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs):
    return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)


# torch's counter knows the GPU attention kernels; the CPU's fused attention counts the same
CPU_ATTENTION = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward,
}


def counted_flops(run) -> int:
    """FLOPs of run(n_steps) at the real step count, from two short runs: every design's work
    is linear in the number of path points (a fixed part: endpoints, captum's extras)."""
    counts = []
    for n in (1, 2):
        with flop_counter.FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter:
            run(n)
        counts.append(counter.get_total_flops())
    return counts


def linear_in_steps(counts: list[int], n: int) -> float:
    return counts[0] + (n - 1) * (counts[1] - counts[0])


class Gemm:
    """The model's own linear-layer GEMMs at the one pass's chunk: per layer, the forward
    x·Wᵀ of Q, K, V, the attention output, the FFN up and down, and their input gradients
    g·W, with the model's weights, rows = chunk points x tokens. `run()` returns seconds."""

    def __init__(self, model, rows: int):
        layer = model.base_model.encoder.layer[0]
        self.weights = [
            layer.attention.self.query.weight,
            layer.attention.self.key.weight,
            layer.attention.self.value.weight,
            layer.attention.output.dense.weight,
            layer.intermediate.dense.weight,
            layer.output.dense.weight,
        ]  # [out, in]
        g = torch.Generator().manual_seed(0)
        self.inputs = {w.shape[1]: torch.randn(rows, w.shape[1], generator=g) for w in self.weights}
        self.grads = {w.shape[0]: torch.randn(rows, w.shape[0], generator=g) for w in self.weights}
        self.flops = sum(2 * 2 * rows * w.shape[0] * w.shape[1] for w in self.weights)

    def run(self, repeats: int = 3) -> float:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for w in self.weights:
                F.linear(self.inputs[w.shape[1]], w)  # forward  [rows, in] · [out, in]ᵀ
                self.grads[w.shape[0]] @ w  # input gradient  [rows, out] · [out, in]
            best = min(best, time.perf_counter() - start)
        return best


def profile_table(fn, rows: int = 18) -> str:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=48)


def best_times(designs: list[tuple[str, callable]], repeats: int) -> dict:
    """name → (best seconds, output); designs interleaved per repeat, so drifting load on a
    shared machine hits them alike."""
    best = {}
    for _ in range(repeats):
        for name, fn in designs:
            start = time.perf_counter()
            out = fn()
            seconds = time.perf_counter() - start
            print(f"  {name}: {seconds:.2f} s", flush=True)
            LOG.append((name, seconds))
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, out, len(LOG) - 1)
    return best


LOG: list[tuple[str, float]] = []  # (name, seconds) of every timed run, in order


def beside(index: int, name: str = "GEMM") -> float:
    """The best `name` run right before or after run `index`: the machine as that run saw it."""
    around = [LOG[i][1] for i in (index - 1, index + 1) if 0 <= i < len(LOG) and LOG[i][0] == name]
    return min(around)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "build/models/minilm")
    parser.add_argument(
        "--bert-base", action="store_true", help="a random BERT-base-shaped classifier (the --model-dir's tokenizer)"
    )
    parser.add_argument("--examples", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--method", default="gausslegendre")
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="bfloat16: also time ours under CPU autocast, with its error vs fp32",
    )
    parser.add_argument(
        "--chunks",
        type=int,
        nargs="*",
        default=[],
        help="also time the one pass at these chunk sizes (path points per forward)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of the one pass")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    loaded = bert_base(args.model_dir, args.tokens) if args.bert_base else load_classifier(args.model_dir, args.tokens)
    texts = make_texts(loaded.tokenizer, args.examples, args.tokens)
    n = args.examples
    cfg = loaded.config
    print(
        f"{loaded.name}: {cfg.num_hidden_layers} layers x {cfg.hidden_size} wide; {n} examples x {args.tokens} "
        f"tokens, {args.steps} steps ({args.method}), {torch.get_num_threads()} threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}, exformer {exformer.__version__}",
        flush=True,
    )
    one_pass(loaded, texts[:1], 2, args.method, "float32", False)  # warm up

    steps, method = args.steps, args.method
    chunk = default_chunk_points(args.tokens, loaded.device)
    designs = [  # (name, fn(n_steps) over all texts)
        ("two-pass (captum LIG + 2nd pass)", lambda s: [two_pass(loaded, t, s, method)[0] for t in texts]),
        (
            "one pass before (whole last layer, SDPA)",
            lambda s: one_pass(loaded, texts, s, method, "float32", False, head_position_only=False, attention="sdpa"),
        ),
        (
            "one pass (last layer at position 0, eager attention)",
            lambda s: one_pass(loaded, texts, s, method, "float32", False),
        ),
    ]
    designs.append(
        ("one pass, SDPA attention", lambda s: one_pass(loaded, texts, s, method, "float32", False, attention="sdpa"))
    )
    for c in args.chunks:
        designs.append(
            (
                f"one pass, chunks of {c} points",
                lambda s, c=c: one_pass(loaded, texts, s, method, "float32", False, chunk=c),
            )
        )
    if n > 1:
        designs.append(
            (f"one pass, {n} requests sharing chunks", lambda s: one_pass(loaded, texts, s, method, "float32", True))
        )
    if args.dtype == "bfloat16":
        designs.append(
            (
                f"one pass, bf16 autocast{', sharing chunks' if n > 1 else ''}",
                lambda s: one_pass(loaded, texts, s, method, "bfloat16", True),
            )
        )
    # chunk size and attention kernel leave the work as it is: counted once, for the default
    same_work = {name: designs[2][0] for name, _ in designs[3:] if "chunks of" in name or "SDPA attention" in name}
    flops = {name: linear_in_steps(counted_flops(fn), steps) for name, fn in designs if name not in same_work}
    flops.update({name: flops[like] for name, like in same_work.items()})
    print("counted: " + ", ".join(f"{name} {f / n / 1e12:.3f} TFLOP/example" for name, f in flops.items()), flush=True)

    gemm = Gemm(loaded.model, chunk * args.tokens)
    gemm_seconds = []

    def timed_gemm():
        gemm_seconds.append(gemm.run())

    # the GEMM before every design and after the last, so that the best of its runs saw the
    # machine at least as quiet as any design did
    timed = [entry for name, fn in designs for entry in (("GEMM", timed_gemm), (name, lambda fn=fn: fn(steps)))]
    best = best_times(timed + [("GEMM", timed_gemm)], args.repeats)
    runs = iter(gemm_seconds)  # the log has each GEMM call's wall time; its best run is the rate
    LOG[:] = [(name, next(runs) if name == "GEMM" else seconds) for name, seconds in LOG]
    gemm_rate = gemm.flops / min(gemm_seconds) / 1e9
    print(
        f"GEMM at the model's shapes ({chunk} points x {args.tokens} tokens = {chunk * args.tokens} rows; "
        f"{len(gemm_seconds)} runs, one before each design and after the last): best {gemm_rate:.1f} GFLOP/s, "
        f"worst {gemm.flops / max(gemm_seconds) / 1e9:.1f}; '% of GEMM' is against the GEMM runs beside "
        f"each design's run"
    )

    t_old, old_ig, _ = best[designs[0][0]]
    full = flops[designs[1][0]]  # the work of the whole model at every point
    scale = max(float(ig.abs().max()) for ig in old_ig)
    print("\n| design | s/example | speed-up | TFLOP/example | GFLOP/s | % of GEMM | max|ΔIG|/max|IG| vs two-pass |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, _ in designs:
        seconds, igs, index = best[name]
        rate = flops[name] / seconds / 1e9
        local_gemm = gemm.flops / beside(index) / 1e9
        diff = (
            "—"
            if name == designs[0][0]
            else f"{max(float((a - b).abs().max()) for a, b in zip(igs, old_ig)) / scale:.1e}"
        )
        print(
            f"| {name} | {seconds / n:.2f} | {t_old / seconds:.2f}x | {flops[name] / n / 1e12:.3f} | "
            f"{rate:.1f} | {rate / local_gemm:.0%} | {diff} |"
        )
    seconds, _, index = best[designs[2][0]]
    print(
        f"(max |IG| = {scale:.2e}; the one pass at the whole model's FLOPs ({full / n / 1e12:.3f} TFLOP/example): "
        f"{full / seconds / 1e9:.1f} GFLOP/s effective, {full / seconds / (gemm.flops / beside(index)):.0%} of GEMM)"
    )
    if args.dtype == "bfloat16":
        bf16, fp32 = best[designs[-1][0]][1], best[designs[-2][0]][1]  # (seconds, IGs, index)
        err = max(float((a - b).abs().max()) for a, b in zip(bf16, fp32))
        print(f"bf16 vs fp32 (ours): max abs error {err:.2e} = {err / scale:.1%} of max |IG|")
    if args.profile:
        print(f"\ntorch.profiler, one pass, one request of {args.tokens} tokens x {steps} steps:")
        print(profile_table(lambda: one_pass(loaded, texts[:1], steps, method, "float32", False)))


if __name__ == "__main__":
    main()
