"""What the forward-only methods (exformer.explain.methods.occlusion, .contextcite) share: the
units of the prompt they leave out, the versions of the prompt without them, their closed-form
cost, and the contract's AblationResponse (one value per unit per target token and for the
whole continuation). The forwards: exformer.core.ablation.
"""

import numpy as np
import torch

from ..contract.errors import RequestError
from ..contract.responses import AblationResponse
from ..contract.vocabulary import DEFAULT_HOLDOUT
from ..core.ablation import default_rows
from ..core.baselines import baseline_token_id
from ..core.cost import forward_cost
from ..core.loading import LoadedModel
from ..core.prompts import Prompt, prompt_ids
from ..core.tokens import TokenRow
from ..core.units import Unit, ablate_text, removed_spans, sentence_units, source_units
from ..core.words import word_rows
from .responses import checked
from .rows import continuation_answer, described_targets, text_units, token_spans


def units_of(request, prompt: Prompt, tokens: list[TokenRow]) -> list[Unit]:
    """What the method leaves out: the prompt's content tokens, words, sentences or sources,
    each with the text it lies in ("where": index into prompt.texts) and its tokens."""
    prompt_rows = [r for r in tokens if not r["target"]]
    spans = token_spans(prompt_rows)
    kind = request.units
    if kind == "source":
        return source_units(request.sources, prompt.texts, spans)
    if kind == "sentence":
        return sentence_units(dict(enumerate(prompt.texts)), spans)
    if kind == "word":
        texts = {0: prompt.texts[0]} if prompt.roles is None else {(0, k): t for k, t in enumerate(prompt.texts)}
        words = word_rows(prompt_rows, texts)
        return [
            {
                "id": f"w{k}",
                "where": w.get("message") or 0,
                "start": w["start"],
                "end": w["end"],
                "text": w["text"],
                "tokens": w["tokens"],
            }
            for k, w in enumerate(words)
        ]
    return [
        {
            "id": f"t{i}",
            "where": span[0],
            "start": span[1],
            "end": span[2],
            "text": prompt.texts[span[0]][span[1] : span[2]],
            "tokens": [i],
        }
        for i, span in enumerate(spans)
        if span is not None
    ]


def version_ids(loaded: LoadedModel, request, prompt: Prompt, units: list[Unit], removed: list[int]) -> tuple[int, ...]:
    """The prompt's ids with the units `removed` left out: their text taken out and the prompt
    tokenized again (as ContextCite), or their tokens replaced by the baseline token."""
    if request.ablation == "baseline":
        token = baseline_token_id(loaded.tokenizer, request.baseline)
        ids = list(prompt.ids)
        for u in removed:
            for i in units[u]["tokens"]:
                ids[i] = token
        return tuple(ids)
    texts = list(prompt.texts)
    for where, spans in removed_spans(units, removed).items():
        texts[where] = ablate_text(prompt.texts[where], spans)
    return tuple(prompt_ids(loaded, request, texts))


def ablated_prompts(
    loaded: LoadedModel, request, prompt: Prompt, units: list[Unit], removals: list[list[int]]
) -> tuple[list[int], list[tuple[int, ...]]]:
    """For each removal (the units left out) the index of its prompt among the distinct prompts
    (the whole prompt first; identical ones run once), and those prompts."""
    versions = [version_ids(loaded, request, prompt, units, r) for r in removals]
    distinct = list(dict.fromkeys([tuple(prompt.ids), *versions]))
    row = {d: k for k, d in enumerate(distinct)}
    return [row[v] for v in versions], distinct


def check_count(loaded: LoadedModel, request, n_units: int) -> None:
    """Occlusion runs one prompt per unit: refused (413, naming `unit`) past the archive's
    max_ablations, before anything runs (contextcite's counts are checked with the request)."""
    limit = loaded.settings.max_ablations
    if request.attribution == "occlusion" and n_units > limit:
        raise RequestError(
            "unit",
            f'"{request.units}" makes {n_units} units, one ablated prompt each, over this '
            f"archive's max_ablations ({limit}); choose a coarser unit (sentence, source)",
            code=413,
        )


def n_holdout(request) -> int:
    return DEFAULT_HOLDOUT if request.n_holdout is None else request.n_holdout


def forward_cost_of(loaded: LoadedModel, plan, units: list[Unit], n_prompts: int) -> dict:
    """The closed-form cost of `n_prompts` ablated prompts (exformer.core.cost.forward_cost): every
    version as long as the whole prompt, sharing the tokens before the first unit (upper bounds:
    a removed unit shortens its version, identical prompts run once)."""
    prompt, n_targets = plan.prompt, plan.n_targets
    first = min((i for unit in units for i in unit["tokens"]), default=len(prompt) - 1)
    shared = min(first, len(prompt) - 1)
    rows = default_rows(len(prompt) + n_targets - shared, loaded.device)
    return forward_cost(loaded, n_prompts, len(prompt), shared, n_targets, rows)


def answer(
    loaded: LoadedModel,
    request,
    plan,
    units: list[Unit],
    scores,
    score: str,
    per_target: np.ndarray,
    whole: np.ndarray,
    full: np.ndarray,
    n_prompts: int,
    surrogate: dict | None = None,
) -> dict:
    """The contract's AblationResponse: per target and for the whole continuation, one value per unit."""
    described = described_targets(loaded, plan.targets, len(plan.prompt), torch.from_numpy(scores.full_logits))
    ids = [u["id"] for u in units]
    for t, target in enumerate(described):
        target["score"] = float(full[t])
        target["attributions"] = [{"id": i, "attribution": float(v)} for i, v in zip(ids, per_target[:, t])]
    response = {
        **continuation_answer(loaded, request, plan.prompt, plan.tokens, plan.text),
        "attribution": request.attribution,
        "unit": request.units,
        "ablation": request.ablation,
        "baseline": request.baseline if request.ablation == "baseline" else None,
        "score": score,
        "units": text_units(units, plan.prompt),
        "targets": described,
        "continuation_attributions": [{"id": i, "attribution": float(v)} for i, v in zip(ids, whole)],
        "surrogate": surrogate,
        "forwards": n_prompts,
    }
    return checked(AblationResponse, response)
