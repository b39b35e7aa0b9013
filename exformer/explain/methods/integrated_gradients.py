"""Integrated gradients (Sundararajan et al. 2017), with the intermediate gradients they are made of.

F is the score of a target (exformer.core.scores: a class of a classifier, a next token, or every
token of a continuation, minus a foil's where given) as a function of the word-embedding output
x = model.get_input_embeddings()(ids), [T, E]; positions and token types stay as they are (as
captum's LayerIntegratedGradients on that layer). Along the straight path from a baseline x':

    IGᵢ(x) = (xᵢ − x′ᵢ) · ∫₀¹ ∂F/∂xᵢ(x′ + α(x − x′)) dα  ≈  (xᵢ − x′ᵢ) · Σₖ wₖ ∂F/∂xᵢ(x′ + αₖ(x − x′)),

summed over the hidden size for one value per token; completeness Σᵢ IGᵢ = F(x) − F(x′) holds
up to the quadrature's error, the convergence delta each answer reports. The rule (αₖ, wₖ) is
captum's (`method`, `n_steps`) or, with `n_steps: "auto"`, a nested rule refined until the delta
is within the tolerance (exformer.core.adaptive). The passes: exformer.core.integrated (one
target per sequence, a TorchServe batch's paths sharing chunks) and exformer.core.continuation
(every target of a continuation from one forward per path point).

Subclasses change the rule and what a token's value is (gradient × input, saliency).
"""

import torch

from ...contract.errors import RequestError
from ...contract.requests import GradientsRequest
from ...contract.responses import relative_delta
from ...contract.vocabulary import DEFAULT_TOLERANCE, KRONROD_POINTS
from ...core.baselines import baseline_embeddings
from ...core.batching import TOO_LARGE, default_chunk_points
from ...core.continuation import (
    ContinuationPath,
    continuation_endpoint_logits,
    integrate_targets,
)
from ...core.cost import gradients_cost
from ...core.integrated import StraightPath, endpoint_logits, integrate
from ...core.loading import LoadedModel
from ...core.scores import contrast, per_row
from ...core.tokens import Encoded, encode, token_table
from ...core.units import sentence_units, source_units
from ...core.words import word_rows, word_sums
from ..attention import top_k_predictions
from ..checks import resolve_target
from ..encoding import check_gradients_size
from ..plan import Plan, check_size
from ..responses import GradientsAnswer, attribution_values
from ..rows import choice, continuation_answer, described_targets, message_values, text_units, token_spans, unit_values
from .base import Method


class IntegratedGradients(Method):
    name = "integrated_gradients"
    complete = True  # its rows sum to F(x) − F(x′) up to the convergence delta
    has_baseline = True  # it explains from a baseline x′ (answers say which, and F(x′))

    # --- what subclasses change -----------------------------------------------------------------
    def rule(self, request: GradientsRequest) -> GradientsRequest:
        """The request as the gradient pass reads it (its `method` and `n_steps`)."""
        return request

    def token_values(self, gradients) -> torch.Tensor:
        """Per token (and per target of a continuation) the attribution: IG summed over the hidden size."""
        return gradients.integrated_gradients.sum(-1)

    # --- cost -----------------------------------------------------------------------------------
    def cost(self, loaded: LoadedModel, plan: Plan, points: int | None = None) -> dict:
        request = self.rule(plan.request)
        points = points or request.most_steps(loaded.settings)
        return gradients_cost(
            loaded,
            len(plan.prompt),
            plan.n_targets,
            points,
            loaded.settings.internal_batch_size,
            whole=request.rows == "whole",
        )

    def least_points(self, request: GradientsRequest) -> int | None:
        return KRONROD_POINTS if request.n_steps == "auto" else None

    def cheaper(self, request: GradientsRequest, fields: dict) -> list[tuple[str, dict]]:
        if request.n_steps == "auto" or request.n_steps > 16:
            return [
                (
                    '"n_steps": 16',
                    {k: v for k, v in fields.items() if k not in ("tolerance", "max_n_steps")}
                    | {"n_steps": 16, "method": "gausslegendre"},
                )
            ]
        return []

    # --- a continuation -------------------------------------------------------------------------
    def run(self, loaded: LoadedModel, plan: Plan) -> GradientsAnswer:
        request, prompt, (targets, _) = self.rule(plan.request), plan.prompt, plan.known()
        settings, device, n_t = loaded.settings, loaded.device, len(targets)
        check_size(loaded, request, len(prompt) + n_t, 1 if request.rows == "whole" else n_t)
        foils = _foils(loaded, request.foil, n_t)
        ids = torch.tensor(prompt.ids + targets, device=device)
        embed = loaded.embedding
        fixed = prompt.fixed + [False] * n_t  # special and template tokens stay themselves ("keep")
        with torch.no_grad():
            x = embed(ids[None])[0].float()
        baseline = baseline_embeddings(loaded, ids, fixed, request.baseline, request.baseline_specials, request.seed)
        if request.continuation_baseline == "keep":
            baseline[len(prompt) :] = x[len(prompt) :]
        path = ContinuationPath(
            ids,
            x,
            baseline,
            len(prompt),
            targets,
            foils,
            request.n_steps,
            request.method,
            request.score,
            whole=request.rows == "whole",
        )
        dtype = loaded.dtype_for(request.dtype)
        # F(x') where the method has a baseline; one-point methods without one take F(x) from their pass
        logits_x, logits_b = continuation_endpoint_logits(loaded, path, dtype) if self.has_baseline else (None, None)
        ends = None
        if request.n_steps == "auto" and logits_x is not None and logits_b is not None:  # IG: it has a baseline
            scores = [
                contrast(request.score, logits[None], targets, foils)[0].double().numpy()
                for logits in (logits_x, logits_b)
            ]
            ends = tuple(score.sum(keepdims=True) if path.whole else score for score in scores)  # per row
        gradients = integrate_targets(
            loaded,
            path,
            settings.internal_batch_size,
            dtype,
            ends,
            request.tolerance or DEFAULT_TOLERANCE,
            request.most_steps(settings),
            keep_logits=logits_x is None,
        )
        logits_x = gradients.logits if logits_x is None else logits_x
        summary = self._continuation_summary(loaded, request, plan, path, gradients, logits_x, logits_b)
        return GradientsAnswer(request=request, summary=summary, path=gradients)

    def _continuation_summary(
        self, loaded: LoadedModel, request, plan: Plan, path: ContinuationPath, gradients, logits_x, logits_b
    ) -> dict:
        prompt, (_, tokens), text = plan.prompt, plan.known(), plan.text
        n_t, n_prompt = len(path.targets), path.n_prompt
        score_x = contrast(path.score, logits_x[None], path.targets, path.foils)[0]  # [n_t]
        score_b = None if logits_b is None else contrast(path.score, logits_b[None], path.targets, path.foils)[0]
        probs = logits_x.softmax(-1)  # [n_t, V]
        described = described_targets(loaded, path.targets, n_prompt, logits_x)
        values = self.token_values(gradients)  # [rows, L]: a row per target, or the whole answer's one
        returned = request.returned
        tolerance = request.tolerance or DEFAULT_TOLERANCE
        spans = token_spans(tokens)
        texts: dict = {**dict(enumerate(prompt.texts)), "c": text}
        word_texts: dict = {
            1: text,
            **({0: prompt.texts[0]} if prompt.roles is None else {(0, k): t for k, t in enumerate(prompt.texts)}),
        }
        words = word_rows(tokens, word_texts) if request.aggregate == "word" else None
        sentences = sentence_units(texts, spans) if request.aggregate == "sentence" else None
        sources = source_units(request.sources, prompt.texts, spans) if request.sources is not None else None
        targets = []
        for t in range(n_t):
            raw = values[t, : n_prompt + t] if not path.whole else None
            entry = {
                **described[t],
                "foil": choice(loaded, path.foils[t], probs[t]) if path.foils is not None else None,
                "score": float(score_x[t]),
                "baseline_score": None if score_b is None else float(score_b[t]),
                **self._completeness(
                    None if raw is None else float(raw.sum()),
                    float(score_x[t]),
                    None if score_b is None else float(score_b[t]),
                    tolerance,
                ),
            }
            if raw is None:  # rows "whole": the targets' facts, the answer's one row below
                targets.append(entry)
                continue
            if "attributions" in returned:
                entry["attributions"] = attribution_values(raw)
                if words is not None:
                    entry["word_attributions"] = attribution_values(word_sums(words, raw))
                _unit_sums(entry, raw, sentences, sources, tokens, prompt)
            if "path_scores" in returned:
                entry["path_scores"] = gradients.path_scores[:, t].tolist()
            targets.append(entry)
        answered = (  # the whole answer's completeness (rows "whole"), else each row has its own
            self._completeness(
                float(values[0].sum()),
                float(score_x.sum()),
                None if score_b is None else float(score_b.sum()),
                tolerance,
            )
            if path.whole
            else None
        )
        summary = {
            **continuation_answer(loaded, request, prompt, tokens, text),
            "attribution": self.name,
            "targets": targets,
            "within_tolerance": (answered or {}).get("within_tolerance")
            if path.whole
            else all(t["within_tolerance"] for t in targets)
            if self.complete
            else None,
            "score": request.score,
            "contrastive": path.foils is not None,
            "baseline": {
                "name": request.baseline,
                "specials": request.baseline_specials,
                "continuation": request.continuation_baseline,
                "seed": request.seed if request.baseline.startswith("rand") else None,
            }
            if self.has_baseline
            else None,
            "method": request.method,
            "n_steps": len(gradients.alphas),  # the points of the rule used ("auto": as refined)
            "tolerance": tolerance if self.complete else None,
            "converged": gradients.converged,
            "dtype": loaded.dtype_for(request.dtype),
        }
        if "attributions" in returned:
            whole = values[:, : n_prompt + n_t].clone()
            for t in range(0 if path.whole else n_t):
                whole[t, n_prompt + t :] = 0  # a row covers its own prefix only
            total = whole.sum(0)
            summary["continuation_attributions"] = {"attributions": attribution_values(total), **(answered or {})}
            _unit_sums(summary["continuation_attributions"], total, sentences, sources, tokens, prompt, plural=True)
        if "step_sizes" in returned:
            summary["alphas"] = list(gradients.alphas)
            summary["step_sizes"] = gradients.step_sizes.tolist()
        if words is not None:
            summary["words"] = words
        if sentences is not None:
            summary["sentences"] = text_units(sentences, prompt)
        if sources is not None:
            summary["sources"] = text_units(sources, prompt)
        return summary

    def _completeness(self, total: float | None, score: float, baseline_score: float | None, tolerance: float) -> dict:
        """A row's convergence delta, its share of the score change and whether it is within the tolerance."""
        if not self.complete or baseline_score is None or total is None:
            return {"convergence_delta": None, "relative_delta": None, "within_tolerance": None}
        delta = total - (score - baseline_score)
        share = relative_delta(delta, score, baseline_score)
        return {
            "convergence_delta": delta,
            "relative_delta": share,
            "within_tolerance": share <= tolerance if share is not None else abs(delta) <= 1e-6,
        }

    # --- single targets, a batch at a time ------------------------------------------------------
    def run_single(self, loaded: LoadedModel, requests: list[GradientsRequest]) -> list:
        """One result per request, computed together: the requests' path points share chunks (one
        pass per dtype where the requests ask for different ones). A request that cannot be
        prepared, or does not fit in memory, gets its RequestError in its place."""
        if not requests:
            return []
        dtypes = [loaded.dtype_for(request.dtype) for request in requests]
        if len(set(dtypes)) > 1:  # one pass per dtype: a pass computes in one
            groups = {
                d: iter(self.run_single(loaded, [r for r, rd in zip(requests, dtypes) if rd == d])) for d in set(dtypes)
            }
            return [next(groups[d]) for d in dtypes]
        dtype, settings = dtypes[0], loaded.settings
        prepared: list = []
        for request in requests:
            try:
                prepared.append(self._prepare(loaded, self.rule(request)))
            except RequestError as error:
                prepared.append(error)
        todo = [p for p in prepared if not isinstance(p, RequestError)]
        if not todo:
            return prepared
        paths = [path for _, path, _ in todo]
        failed: set[int] = set()
        chunk = settings.internal_batch_size or default_chunk_points(max(len(p) for p in paths), loaded.device)
        ends = endpoint_logits(loaded, paths, chunk, dtype, too_large=failed.add)
        for path, end in zip(paths, ends):  # the default target is the model's own choice at x
            if end is None:
                continue
            if path.target is None:
                path.target = int(end[0].argmax())
            path.ends = tuple(per_row(torch.stack(end), [path.target] * 2, [path.score] * 2).tolist())
        live = [i for i in range(len(paths)) if i not in failed]
        gradients = integrate(
            loaded,
            [paths[i] for i in live],
            settings.internal_batch_size,
            dtype,
            too_large=lambda j: failed.add(live[j]),
        )
        by_path = dict(zip(live, gradients))
        results = []
        for i, (request, path, encoded) in enumerate(todo):
            results.append(
                RequestError("text", TOO_LARGE, code=413)
                if i in failed
                else self._single_summary(loaded, request, path, encoded, by_path[i], ends[i])
            )
        answers = iter(results)
        return [p if isinstance(p, RequestError) else next(answers) for p in prepared]

    def _prepare(
        self, loaded: LoadedModel, request: GradientsRequest
    ) -> tuple[GradientsRequest, StraightPath, Encoded]:
        encoded = encode(loaded, request.text, request.text_pair)
        embed = loaded.embedding
        n_steps = request.most_steps(loaded.settings)  # adaptive: at most max_n_steps
        check_gradients_size(request, loaded.settings, len(encoded), embed.embedding_dim)
        ids = encoded.inputs["input_ids"][0]
        with torch.no_grad():
            x = embed(ids[None])[0].float()
        baseline = baseline_embeddings(
            loaded, ids, encoded.special, request.baseline, request.baseline_specials, request.seed
        )
        target = request.target if isinstance(request.target, int) else None  # checks resolved a label to its index
        path = StraightPath(
            encoded.inputs,
            x,
            baseline,
            target,
            request.n_steps,
            request.method,
            request.score,
            request.tolerance,
            n_steps,
        )
        return request, path, encoded

    def _single_summary(
        self, loaded: LoadedModel, request, path: StraightPath, encoded, gradients, ends
    ) -> GradientsAnswer:
        """`ends`: the logits at x and at x′ (known: the path was not dropped)."""
        logits_x, logits_b = ends
        target = int(path.target)  # type: ignore[arg-type]  # set from the logits at x where not asked
        score_x, score_b = per_row(torch.stack([logits_x, logits_b]), [target] * 2, [path.score] * 2).tolist()
        raw = self.token_values(gradients)  # [T]
        summary = {
            "model": loaded.details(),
            "attribution": self.name,
            "tokens": token_table(loaded, encoded, request.text, request.text_pair),
            "truncated": encoded.truncated,
            "n_tokens_input": encoded.n_tokens_input,
            "n_tokens_dropped": encoded.n_tokens_dropped,
            "prediction": _prediction(loaded, logits_x),
            "score": request.score,
            "target": {**_describe_target(loaded, target), "score": score_x},
            "baseline": {
                "name": request.baseline,
                "specials": request.baseline_specials,
                "seed": request.seed if request.baseline.startswith("rand") else None,
                "score": score_b,
            }
            if self.has_baseline
            else None,
            "method": request.method,
            "n_steps": len(gradients.alphas),  # the points of the rule used ("auto": as refined)
            "tolerance": request.tolerance,
            "converged": gradients.converged,
            "dtype": loaded.dtype_for(request.dtype),
            "convergence_delta": float(raw.sum()) - (score_x - score_b) if self.complete else None,
        }
        returned = request.returned
        if "attributions" in returned:
            summary["attributions"] = attribution_values(raw)
            if request.aggregate == "word":
                summary["words"] = word_rows(summary["tokens"], {0: request.text, 1: request.text_pair})
                summary["word_attributions"] = attribution_values(word_sums(summary["words"], raw))
        if "step_sizes" in returned:
            summary["alphas"] = list(gradients.alphas)
            summary["step_sizes"] = gradients.step_sizes.tolist()
        if "path_scores" in returned:
            summary["path_scores"] = gradients.path_scores.tolist()
            summary["gradient_norms"] = gradients.gradient_norms.tolist()
        return GradientsAnswer(request=request, summary=summary, path=gradients)


def _foils(loaded: LoadedModel, foil, n_t: int) -> list[int] | None:
    if foil is None:
        return None
    if not isinstance(foil, list):
        return [resolve_target(loaded, foil, "foil")] * n_t
    if len(foil) != n_t:
        raise RequestError(
            "foil",
            f"has {len(foil)} tokens but the continuation has {n_t} target tokens; "
            "give one foil for all, or one per target token",
        )
    return [resolve_target(loaded, f, "foil") for f in foil]


def _unit_sums(entry: dict, raw, sentences, sources, tokens, prompt, plural: bool = False) -> None:
    """A row's (or the whole continuation's) sums per sentence, source and message."""
    name = (lambda k: k) if plural else (lambda k: k[:-1] + "_attributions")  # noqa: E731
    if sentences is not None:
        entry[name("sentences")] = unit_values(sentences, raw)
    if sources is not None:
        entry[name("sources")] = unit_values(sources, raw)
    if prompt.roles is not None:
        entry[name("messages")] = message_values(tokens, raw, prompt.roles)


def _prediction(loaded: LoadedModel, logits: torch.Tensor) -> dict:
    probs = logits.softmax(-1)
    if loaded.labels is not None:  # a classifier
        return {"label": loaded.labels[int(probs.argmax())], "probabilities": dict(zip(loaded.labels, probs.tolist()))}
    return {"next_tokens": top_k_predictions(loaded, logits[None], loaded.settings.default_top_k)[0]}


def _describe_target(loaded: LoadedModel, target: int) -> dict:
    if loaded.labels is not None:  # a classifier
        return {"index": target, "label": loaded.labels[target]}
    tokenizer = loaded.tokenizer
    return {"index": target, "token": tokenizer.convert_ids_to_tokens(target), "text": tokenizer.decode([target])}
