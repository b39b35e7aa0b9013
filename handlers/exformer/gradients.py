"""Integrated and intermediate gradients from ONE batched pass along the path.

What is attributed: F, the softmax probability of the target — a class of a sequence
classifier, or the next token after the prompt of a causal LM — as a function of the
word-embedding output x = model.get_input_embeddings()(ids), shape [T, E]. Positions and
token types stay as they are (captum's LayerIntegratedGradients on that layer does the same).
The same F gives the prediction, the path scores and the convergence delta.

The old server ran captum's LayerIntegratedGradients and then a second full pass for the
per-step gradients; here the per-step gradients are the pass, and everything else (the
integrated gradients, the delta, the norms) is arithmetic on them.
"""

import json
from contextlib import contextmanager
from dataclasses import dataclass
import inspect

import torch
from captum.attr._utils.approximation_methods import approximation_parameters

from .attention import top_k_predictions
from .baselines import baseline_embeddings
from .encoding import encode_array, json_bytes, npz_bytes, torch_gzip_bytes
from .errors import RequestError
from .requests import GradientsRequest, check_gradients_size
from .settings import Settings
from .tokens import encode, token_table

SCORE = "probability"  # what F is: softmax probability of the target (class or next token)

# Default chunk size, per device type: at most this many tokens (points x length) and this
# many attention scores (points x length²) per forward+backward. On 2 CPU cores MiniLM ran
# fastest per point with ~16 points of 128 tokens and 2 of 512 (with eager attention, 10
# points of 512 were 2x slower per point: the attention maps no longer fit in cache).
# GPUs take far more; out of memory, chunks halve.
CHUNK_BUDGET = {"cpu": (2048, 2**19), "cuda": (65536, 2**26)}


# --- the path -------------------------------------------------------------------------------


@dataclass
class Path:
    """One straight path x' → x to integrate along, and what to score."""

    inputs: dict[str, torch.Tensor]  # model kwargs of one sequence, batch of one
    input: torch.Tensor  # x: [T, E] word-embedding output
    baseline: torch.Tensor  # x': [T, E]
    target: int  # class index or next-token id
    n_steps: int = 50
    method: str = "gausslegendre"

    def __len__(self):
        return self.input.shape[0]


@dataclass
class PathResult:
    """Everything the pass saw on one path. IG and the path points are derived, not stored twice."""

    input: torch.Tensor  # x [T, E]
    baseline: torch.Tensor  # x' [T, E]
    alphas: list[float]  # [n] where on [0, 1] each gradient was taken
    step_sizes: torch.Tensor  # [n] float32 quadrature weights (captum's)
    intermediate_gradients: torch.Tensor  # [n, T, E] ∂F/∂x at each path point
    path_scores: torch.Tensor  # [n] F at each path point

    @property
    def intermediates(self) -> torch.Tensor:
        """[n, T, E] the path points, recomputed with the arithmetic that made them for the model."""
        return torch.stack([path_point(self.input, self.baseline, a) for a in self.alphas])

    @property
    def integrated_gradients(self) -> torch.Tensor:
        """[T, E] (x − x') ⊙ Σₖ wₖ gₖ, in captum's order of operations."""
        weighted = self.intermediate_gradients * self.step_sizes.view(-1, 1, 1)
        return weighted.sum(0) * (self.input - self.baseline)

    @property
    def gradient_norms(self) -> torch.Tensor:
        """[n] ‖gₖ‖₂ over tokens and hidden size: where along the path the gradient lives."""
        return self.intermediate_gradients.flatten(1).norm(dim=1)


def nodes(method: str, n_steps: int) -> tuple[list[float], list[float]]:
    """(alphas, step sizes) of captum's quadrature `method` with `n_steps` points."""
    step_sizes, alphas = approximation_parameters(method)
    return alphas(n_steps), step_sizes(n_steps)


def path_point(x: torch.Tensor, baseline: torch.Tensor, alpha: float) -> torch.Tensor:
    """x' + α(x − x'), written as captum writes it so the floats agree."""
    return baseline + alpha * (x - baseline)


def integrate(
    loaded, paths: list[Path], internal_batch_size: int | None = None, dtype: str = "float32"
) -> list[PathResult]:
    """Intermediate gradients along each path, in one batched pass over all path points.

    For a path from x' to x and a quadrature (αₖ, wₖ), k = 1..n (captum's approximation
    methods), integrated gradients are

        IG(x) = (x − x') ⊙ ∫₀¹ ∂F/∂x(x' + α(x − x')) dα  ≈  (x − x') ⊙ Σₖ wₖ gₖ,
        gₖ = ∂F/∂x at the path point xₖ = x' + αₖ(x − x'),

    and completeness says Σ IG ≈ F(x) − F(x') (their difference is the convergence delta).

    The gₖ are the intermediate gradients. All path points of all paths are laid out in one
    list and cut into chunks of `internal_batch_size` points (by default from the sequence
    length); a chunk may mix paths, padded to its longest sequence. Each chunk is one
    forward with the word-embedding output replaced by its path points and one backward of
    Σ F (rows are independent, so each row's gradient is its own). Out of memory, a chunk
    is halved and retried.
    """
    plans = [nodes(p.method, p.n_steps) for p in paths]
    width = paths[0].input.shape[1] if paths else 0
    grads = [torch.empty(p.n_steps, len(p), width) for p in paths]
    scores = [torch.empty(p.n_steps) for p in paths]
    points = [(i, k) for i, p in enumerate(paths) for k in range(p.n_steps)]

    def run(chunk):
        rows = [(paths[i], plans[i][0][k]) for i, k in chunk]
        chunk_grads, chunk_scores = gradients_at(loaded, rows, dtype)
        for (i, k), g, s in zip(chunk, chunk_grads, chunk_scores):
            grads[i][k], scores[i][k] = g, s

    longest = max((len(p) for p in paths), default=1)
    with attention_for_gradients(loaded.model):
        for_each_chunk(points, internal_batch_size or default_chunk_points(longest, loaded.device), run)
    return [
        PathResult(
            input=p.input.cpu(),
            baseline=p.baseline.cpu(),
            alphas=alphas,
            step_sizes=torch.tensor(step_sizes).float(),
            intermediate_gradients=g,
            path_scores=s,
        )
        for p, (alphas, step_sizes), g, s in zip(paths, plans, grads, scores)
    ]


def gradients_at(loaded, rows: list[tuple[Path, float]], dtype: str = "float32"):
    """One chunk: (∂F/∂x [T_i, E] per row on CPU, F [B]) at the points x' + α(x − x')."""
    points = [path_point(p.input, p.baseline, alpha) for p, alpha in rows]
    kwargs, padded, spans = pad_batch(loaded, [p.inputs for p, _ in rows], points)
    padded.requires_grad_()
    with torch.enable_grad():
        logits = head_logits(loaded, kwargs, padded, spans, dtype)
        score = target_scores(logits, torch.tensor([p.target for p, _ in rows], device=logits.device))
        (grad,) = torch.autograd.grad(score.sum(), padded)
    grad = grad.detach().float().cpu()
    return [grad[b, a:e] for b, (a, e) in enumerate(spans)], score.detach().cpu()


# --- plumbing: chunks, padding, the embedding hook, the score ---------------------------------


def default_chunk_points(n_tokens: int, device: torch.device) -> int:
    """Path points per forward: short texts batch many, long ones few (see CHUNK_BUDGET)."""
    tokens, scores = CHUNK_BUDGET["cuda" if torch.device(device).type == "cuda" else "cpu"]
    n_tokens = max(1, n_tokens)
    return max(1, min(tokens // n_tokens, scores // n_tokens**2))


def _is_oom(error: BaseException) -> bool:
    message = str(error)
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)
    )


def for_each_chunk(items: list, size: int, run) -> None:
    """run(items[i:i+size]) over all items; on out-of-memory halve the size and retry."""
    start = 0
    while start < len(items):
        chunk = items[start : start + size]
        try:
            run(chunk)
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if not _is_oom(error):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if size == 1:
                raise RequestError("text", "too long to explain within this worker's memory", code=413)
            size = max(1, size // 2)
            continue
        start += len(chunk)


@contextmanager
def attention_for_gradients(model):
    """Run on SDPA where the model can switch: gradients need no attention maps, and fused
    attention keeps no [T, T] maps for the backward. Puts back what it found (eager, which
    the attention view needs)."""
    current = model.config._attn_implementation
    switch = current == "eager" and model._supports_sdpa and model._can_set_attn_implementation()
    if switch:
        model.set_attn_implementation("sdpa")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(current)


def pad_side(loaded) -> str:
    """Left only for heads that read the last position whatever the mask says (XLNet)."""
    return "left" if getattr(loaded.config, "summary_type", None) == "last" else "right"


def pad_batch(loaded, inputs: list[dict], embeddings: list[torch.Tensor]):
    """Stack sequences of different lengths: (model kwargs, embeddings [B, T, E], spans).

    `spans[b]` = (start, end) of row b's real tokens. Padding is masked out by the attention
    mask; padded input ids are the pad id (classifier heads of decoders look for it).
    """
    longest = max(e.shape[0] for e in embeddings)
    left = pad_side(loaded) == "left"
    pad_id = loaded.config.pad_token_id
    pad_id = pad_id if pad_id is not None else (loaded.tokenizer.pad_token_id or 0)
    spans = [(longest - e.shape[0], longest) if left else (0, e.shape[0]) for e in embeddings]
    padded = embeddings[0].new_zeros(len(embeddings), longest, embeddings[0].shape[1])
    kwargs = {}
    for name in inputs[0]:
        fill = pad_id if name == "input_ids" else 0
        kwargs[name] = inputs[0][name].new_full((len(inputs), longest), fill)
    for b, ((start, end), row, emb) in enumerate(zip(spans, inputs, embeddings)):
        padded[b, start:end] = emb
        for name, value in row.items():
            kwargs[name][b, start:end] = value[0]
    return kwargs, padded, spans


@contextmanager
def embedding_output(module: torch.nn.Module, values: torch.Tensor, input_ids: torch.Tensor):
    """Make the word-embedding module return `values` [B, T, E] instead of its lookup.

    Some models (XLNet) embed time-first ids [T, B]; they get the values time-first too.
    A half-precision model gets them in its dtype; the gradient still reaches the float32 points.
    """

    def hook(_module, args, output):
        ids = args[0]
        batch_first = ids.shape == input_ids.shape and torch.equal(ids, input_ids)
        return (values if batch_first else values.transpose(0, 1)).to(output.dtype)

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _accepts(model, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters


def head_logits(loaded, kwargs: dict, embeddings: torch.Tensor, spans, dtype: str = "float32") -> torch.Tensor:
    """Logits [B, C] of the classifier, or [B, V] of the next token after each row's last token."""
    model = loaded.model
    extra = {"use_cache": False} if _accepts(model, "use_cache") else {}
    last = torch.tensor([end - 1 for _, end in spans], device=kwargs["input_ids"].device)
    if loaded.head == "causal-lm" and _accepts(model, "logits_to_keep"):
        extra["logits_to_keep"] = last[:, None]  # project only the positions we score
    autocast = torch.autocast(embeddings.device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    with embedding_output(model.get_input_embeddings(), embeddings, kwargs["input_ids"]), autocast:
        logits = model(**kwargs, **extra).logits
    if loaded.head == "causal-lm":
        rows = torch.arange(len(spans), device=logits.device)
        logits = logits[rows, 0] if "logits_to_keep" in extra else logits[rows, last.to(logits.device)]
    return logits.float()


def target_scores(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """F per row: the softmax probability of the row's target."""
    return logits.softmax(-1).gather(-1, targets.view(-1, 1).to(logits.device))[:, 0]


@torch.no_grad()
def endpoint_logits(loaded, paths: list[Path], chunk_points: int, dtype: str = "float32"):
    """Logits at every x and x' (rows 2i and 2i+1), forward only, in shared chunks."""
    rows = [(p.inputs, e) for p in paths for e in (p.input, p.baseline)]
    out = []

    def run(chunk):
        kwargs, padded, spans = pad_batch(loaded, [r for r, _ in chunk], [e for _, e in chunk])
        out.extend(head_logits(loaded, kwargs, padded, spans, dtype).cpu())

    with attention_for_gradients(loaded.model):
        for_each_chunk(rows, chunk_points, run)
    return out


# --- requests → responses --------------------------------------------------------------------


@dataclass
class GradientsResult:
    """One request's answer: the JSON summary, the full tensors, and how to put it on the wire."""

    request: GradientsRequest
    summary: dict
    path: PathResult

    def tensors(self) -> dict[str, torch.Tensor]:
        """The old server's layout: IG [1, T, E], per-step tensors [n, T, E], step sizes [n]."""
        made = {
            "attributions": lambda: {"integrated_gradients": self.path.integrated_gradients[None]},
            "intermediate_gradients": lambda: {"intermediate_gradients": self.path.intermediate_gradients},
            "step_sizes": lambda: {"step_sizes": self.path.step_sizes},
            "intermediates": lambda: {"intermediates": self.path.intermediates},
            "path_scores": lambda: {"path_scores": self.path.path_scores},
        }
        return {k: v for item in self.request.returns for k, v in made[item]().items()}

    def body(self) -> tuple[bytes, str]:
        """(bytes, content type) in the request's format."""
        fmt = self.request.format
        if fmt == "torch-gzip":
            return torch_gzip_bytes(self.tensors()), "application/gzip"
        if fmt == "npz":
            arrays = {**self.tensors(), **_summary_arrays(self.summary)}
            arrays["summary"] = json.dumps(self.summary)
            return npz_bytes(arrays), "application/x-npz"
        return json_bytes(self.to_json()), "application/json"

    def to_json(self) -> dict:
        """The summary plus, only if asked in `return`, the full per-step tensors."""
        out = dict(self.summary)
        for name in ("intermediate_gradients", "intermediates"):
            if name in self.request.returns:
                out[name] = encode_array(getattr(self.path, name), "json")
        return out


def _summary_arrays(summary: dict) -> dict:
    arrays = {}
    if "attributions" in summary:
        arrays["attributions"] = torch.tensor(summary["attributions"]["raw"])
    for name in ("alphas", "gradient_norms"):
        if name in summary:
            arrays[name] = torch.tensor(summary[name], dtype=torch.float64)
    return arrays


def explain_gradients(loaded, requests: list[GradientsRequest], settings: Settings = Settings()):
    """One result per request, computed together: the requests' path points share chunks.

    A request that cannot be prepared (its response would be too large, its text tokenizes
    to nothing) gets its RequestError in its place; the others are still answered.
    """
    prepared = []
    for request in requests:
        try:
            prepared.append(_prepare(loaded, request, settings))
        except RequestError as error:
            prepared.append(error)
    todo = [p for p in prepared if not isinstance(p, RequestError)]
    if not todo:
        return prepared
    chunk = settings.internal_batch_size or default_chunk_points(max(len(p[1]) for p in todo), loaded.device)
    paths = [path for _, path, _ in todo]
    ends = endpoint_logits(loaded, paths, chunk, settings.dtype)
    for i, path in enumerate(paths):  # the default target is the model's own choice at x
        if path.target is None:
            path.target = int(ends[2 * i].argmax())
    results = iter(integrate(loaded, paths, settings.internal_batch_size, settings.dtype))
    ends = iter(zip(ends[0::2], ends[1::2]))
    return [
        p if isinstance(p, RequestError) else _result(loaded, *p, next(results), *next(ends), settings)
        for p in prepared
    ]


def _prepare(loaded, request: GradientsRequest, settings: Settings):
    encoded = encode(loaded, request.text, request.text_pair, loaded.max_tokens)
    width = loaded.model.get_input_embeddings().embedding_dim
    check_gradients_size(request, len(encoded), width, settings)
    ids = encoded.inputs["input_ids"][0]
    with torch.no_grad():
        x = loaded.model.get_input_embeddings()(ids[None])[0].float()
    baseline = baseline_embeddings(
        loaded, ids, encoded.special, request.baseline, request.baseline_specials, request.seed
    )
    path = Path(encoded.inputs, x, baseline, request.target, request.n_steps, request.method)
    return request, path, encoded


def _result(loaded, request, path, encoded, result: PathResult, logits_x, logits_b, settings) -> GradientsResult:
    target = path.target
    score_x = float(target_scores(logits_x[None], torch.tensor([target]))[0])
    score_b = float(target_scores(logits_b[None], torch.tensor([target]))[0])
    ig = result.integrated_gradients
    raw = ig.sum(-1)
    norm = raw.norm()
    summary = {
        "model": loaded.details(),
        "tokens": token_table(loaded, encoded, request.text, request.text_pair),
        "truncated": encoded.truncated,
        "n_tokens_input": encoded.n_tokens_input,
        "n_tokens_dropped": encoded.n_tokens_dropped,
        "prediction": _prediction(loaded, logits_x, settings),
        "score": SCORE,
        "target": {**_describe_target(loaded, target), "score": score_x},
        "baseline": {
            "name": request.baseline,
            "specials": request.baseline_specials,
            "seed": request.seed if request.baseline.startswith("rand") else None,
            "score": score_b,
        },
        "method": request.method,
        "n_steps": request.n_steps,
        "convergence_delta": float(ig.sum()) - (score_x - score_b),
    }
    if "attributions" in request.returns:
        summary["attributions"] = {
            "raw": raw.tolist(),
            "normalized": (raw / norm if norm > 0 else raw).tolist(),
        }
    if "step_sizes" in request.returns:
        summary["alphas"] = list(result.alphas)
        summary["step_sizes"] = result.step_sizes.tolist()
    if "path_scores" in request.returns:
        summary["path_scores"] = result.path_scores.tolist()
        summary["gradient_norms"] = result.gradient_norms.tolist()
    return GradientsResult(request=request, summary=summary, path=result)


def _prediction(loaded, logits: torch.Tensor, settings: Settings) -> dict:
    probs = logits.softmax(-1)
    if loaded.head == "sequence-classification":
        return {
            "label": loaded.labels[int(probs.argmax())],
            "probabilities": dict(zip(loaded.labels, probs.tolist())),
        }
    return {"next_tokens": top_k_predictions(loaded, logits[None], settings.default_top_k)[0]}


def _describe_target(loaded, target: int) -> dict:
    if loaded.head == "sequence-classification":
        return {"index": target, "label": loaded.labels[target]}
    tokenizer = loaded.tokenizer
    return {"index": target, "token": tokenizer.convert_ids_to_tokens(target), "text": tokenizer.decode([target])}
