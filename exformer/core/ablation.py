"""Forward-only attributions of a continuation: occlusion and ContextCite.

Both score the same continuation y_0 … y_{n-1} after many versions of the prompt, each with
some units (tokens, words, sentences, sources) left out, and never run a backward:

- occlusion: one version per unit, without it; a unit's value for target t is
  F_t(prompt) − F_t(prompt without the unit) (positive: the unit raised the target's score).
- ContextCite (Cohen-Wang et al. 2024, MIT's `context-cite` package): random masks (unit kept
  with probability p; mask k drawn by `numpy.random.RandomState(seed + k)`, as the package),
  each target's log-probability logit log p/(1 − p) after each masked prompt, and per target
  (and for the whole answer: the logit of the continuation's probability) a Lasso surrogate
  (scikit-learn, alpha 0.01 on standardized masks, as the package) whose weights are the
  attributions. Masks past the fitted ones are held out to say how well the surrogate predicts.

Every version runs as a batched forward under inference mode on the KV cache of the prefix
that all versions share (the tokens before the first unit any of them leaves out), with the
vocabulary projected only at the scored positions.
"""

import copy
from dataclasses import dataclass

import numpy as np
import torch

from .batching import for_each_chunk
from .loading import LoadedModel
from .scores import head, score

LASSO_ALPHA = 0.01  # ContextCite's


@dataclass
class TargetScores:
    """Per version of the prompt and per target token: the scores every method needs, float64."""

    logit: np.ndarray  # [versions, n_t]
    log_probability: np.ndarray
    logit_probability: np.ndarray  # log p − log(1 − p), computed as ContextCite does: logit − logsumexp(others)
    full_logits: np.ndarray | None = None  # [n_t, V] after the first prompt (what describes the targets)

    def of(self, name: str) -> np.ndarray:
        return np.exp(self.log_probability) if name == "probability" else getattr(self, name)


def shared_prefix(sequences: list[list[int]]) -> int:
    """Length of the prefix every sequence starts with."""
    first, n = sequences[0], min(len(s) for s in sequences)
    for k in range(n):
        if any(s[k] != first[k] for s in sequences):
            return k
    return n


@torch.inference_mode()
def score_versions(
    loaded: LoadedModel, prompts: list[list[int]], targets: list[int], rows_per_forward: int | None = None
) -> TargetScores:
    """The targets' scores after each prompt in `prompts` (each followed by the targets), and
    the next-token logits after the first."""
    model, device, n_t = loaded.model, loaded.device, len(targets)
    sequences = [p + targets for p in prompts]
    prefix = min(shared_prefix(sequences), min(len(p) for p in prompts) - 1)  # every version feeds ≥ 1 token
    base, project = model.base_model, head(model)
    past = None
    if prefix > 0:
        past = base(input_ids=torch.tensor([sequences[0][:prefix]], device=device), use_cache=True).past_key_values
    rows = rows_per_forward or default_rows(max(len(s) for s in sequences) - prefix, device)
    out = {name: np.empty((len(prompts), n_t)) for name in ("logit", "log_probability", "logit_probability")}
    target_index = torch.tensor(targets, device=device)
    full_logits: list = []

    def run(chunk_rows: list[int]) -> None:
        fed = [sequences[k][prefix:-1] for k in chunk_rows]  # the last target is scored, never read
        width = max(len(f) for f in fed)
        ids = torch.tensor([f + [f[-1]] * (width - len(f)) for f in fed], device=device)  # right-padded: causal
        extra = {}
        if past is not None:
            extra["past_key_values"] = _repeated(past, len(fed))
        hidden = base(input_ids=ids, use_cache=past is not None, **extra).last_hidden_state  # [B, width, H]
        at = torch.tensor([[len(f) - n_t + t for t in range(n_t)] for f in fed], device=device)  # scored positions
        picked = hidden.gather(1, at[..., None].expand(-1, -1, hidden.shape[-1]))  # [B, n_t, H]
        logits = project(picked).double()  # [B, n_t, V]
        if chunk_rows[0] == 0:
            full_logits.append(logits[0].float().cpu().numpy())
        for name, values in out.items():
            values[chunk_rows] = score(name, logits, target_index).cpu().numpy()

    # Out of memory, a chunk halves (exformer.core.batching); the deadline is checked before each.
    for_each_chunk(list(range(len(sequences))), rows, run, counters=loaded.counters, what="prompt versions")
    return TargetScores(**out, full_logits=full_logits[0])


def _repeated(past, n: int):
    cache = copy.deepcopy(past)
    for layer in cache.layers:
        layer.batch_repeat_interleave(n)
    return cache


def default_rows(length: int, device) -> int:
    """Versions per forward: ~8k positions on CPU (a few hundred MB of activations at 135M
    parameters), more on a GPU."""
    budget = 32_768 if getattr(device, "type", device) == "cuda" else 8_192
    return max(1, min(64, budget // max(1, length)))


def continuation_logit_probability(logit_probability: np.ndarray) -> np.ndarray:
    """The whole continuation's log p/(1 − p) from its tokens' (ContextCite's aggregate)."""
    log_p = -np.logaddexp(0.0, -logit_probability).sum(axis=-1)  # Σ log σ(ℓ_t) = log p(continuation)
    return log_p - np.log(-np.expm1(log_p))


MAX_SEED = 2**32 - 1  # numpy's RandomState takes seeds up to this


def contextcite_masks(n_units: int, n_masks: int, keep_probability: float, seed: int) -> np.ndarray:
    """[n_masks, n_units] bool, True: kept; mask k from RandomState(seed + k), as the package,
    while seed + k is a seed RandomState takes; past 2³² − 1 (where the package fails) from
    RandomState([seed, k]), a seed of two words that never overflows."""
    masks = np.zeros((n_masks, n_units), dtype=bool)
    for k in range(n_masks):
        state = np.random.RandomState(seed + k if seed + k <= MAX_SEED else [seed, k])
        masks[k] = state.choice([False, True], size=n_units, p=[1 - keep_probability, keep_probability])
    return masks


def fit_surrogate(masks: np.ndarray, outputs: np.ndarray, n_tokens: int = 1) -> tuple[np.ndarray, float]:
    """Lasso weights [units] and intercept of outputs ≈ masks · w + b, fit as ContextCite: on
    standardized masks, outputs divided by the number of tokens they sum, weights rescaled back."""
    from sklearn.linear_model import Lasso
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scaler, lasso = StandardScaler(), Lasso(alpha=LASSO_ALPHA, random_state=0, fit_intercept=True)
    make_pipeline(scaler, lasso).fit(masks.astype(np.float32), outputs / n_tokens)
    weight = lasso.coef_ / scaler.scale_
    bias = lasso.intercept_ - (scaler.mean_ / scaler.scale_) @ lasso.coef_
    return weight * n_tokens, float(bias * n_tokens)


def surrogate_fit(weights: np.ndarray, intercept: float, masks: np.ndarray, outputs: np.ndarray) -> dict:
    """How well the surrogate predicts held-out masks: R² and Spearman's ρ (ContextCite's LDS)."""
    if len(outputs) < 2:
        return {"r2": None, "spearman": None, "mean_absolute_error": None}
    from scipy.stats import spearmanr
    from sklearn.metrics import r2_score

    predicted = masks.astype(np.float64) @ weights + intercept
    rho = spearmanr(predicted, outputs).statistic
    return {
        "r2": float(r2_score(outputs, predicted)),
        "spearman": None if np.isnan(rho) else float(rho),
        "mean_absolute_error": float(np.abs(predicted - outputs).mean()),
    }


__all__ = [
    "TargetScores",
    "score_versions",
    "contextcite_masks",
    "fit_surrogate",
    "surrogate_fit",
    "continuation_logit_probability",
    "shared_prefix",
    "LASSO_ALPHA",
]
