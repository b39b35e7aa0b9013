"""A continuation request planned once: its prompt (rendered, tokenized, its sources found), how
many targets it has (given, or generate's most), then its targets and token rows once known.
The same plan serves the dry run's estimate, the refusal of a request over the archive's
limits and the run, so nothing is rendered, tokenized or located twice."""

from dataclasses import dataclass, field

import torch

from ..contract.errors import RequestError
from ..contract.requests import GradientsRequest
from ..core.continuation import greedy
from ..core.loading import LoadedModel
from ..core.prompts import Prompt, prompt_of
from ..core.tokens import TokenRow
from ..core.units import Unit, source_units
from .encoding import check_gradients_size
from .rows import token_rows


@dataclass
class Plan:
    request: GradientsRequest
    prompt: Prompt
    n_targets: int  # the continuation's tokens, or generate's max_new_tokens until generated
    targets: list[int] | None = None  # target ids, once known
    offsets: list[tuple[int, int]] = field(default_factory=list)  # each target's span in `text`
    text: str = ""  # the continuation
    tokens: list[TokenRow] | None = None  # the contract's GenerationTokens: prompt, then targets
    units: list[Unit] | None = None  # forward-only: what is left out (made once, by the method)

    def known(self) -> tuple[list[int], list[TokenRow]]:
        """(targets, token rows), once `complete` made them: what every method's run reads."""
        if self.targets is None or self.tokens is None:
            raise RuntimeError("a plan runs once complete(): its targets and token rows are not known yet")
        return self.targets, self.tokens


def plan(loaded: LoadedModel, request: GradientsRequest) -> Plan:
    """The prompt and the count of targets: everything an estimate needs, and nothing run.
    A source not found in the prompt is refused here, before any cost."""
    prompt = prompt_of(loaded, request)
    if request.sources is not None:
        source_units(request.sources, prompt.texts, prompt.spans)
    if request.continuation is None:
        return Plan(request, prompt, request.generate.max_new_tokens)
    cont = loaded.tokenizer(request.continuation, add_special_tokens=False, return_offsets_mapping=True)
    if not cont["input_ids"]:
        raise RequestError("continuation", "produced no tokens")
    return Plan(
        request,
        prompt,
        len(cont["input_ids"]),
        list(cont["input_ids"]),
        [tuple(o) for o in cont["offset_mapping"]],
        request.continuation,
    )


def generation_room(loaded: LoadedModel, plan: Plan) -> None:
    """generate: a 413 where the prompt leaves no position to generate into."""
    if loaded.max_tokens - len(plan.prompt) < 1:
        raise RequestError(
            "text",
            f"has {len(plan.prompt)} tokens, the model's max_tokens ({loaded.max_tokens}): no room to generate",
            code=413,
        )


def complete(loaded: LoadedModel, plan: Plan) -> Plan:
    """The targets (generated greedily where asked), checked against max_tokens, and the token rows."""
    request, prompt = plan.request, plan.prompt
    if plan.targets is None:
        limit = loaded.max_tokens - len(prompt)
        check_size(loaded, request, len(prompt) + plan.n_targets, plan.n_targets)
        plan.targets = greedy(loaded, torch.tensor(prompt.ids, device=loaded.device), min(plan.n_targets, limit))
        plan.text, plan.offsets = decoded_offsets(loaded.tokenizer, plan.targets)
        plan.n_targets = len(plan.targets)
    if len(prompt) + plan.n_targets > loaded.max_tokens:
        name = "continuation" if request.continuation is not None else "generate"
        raise RequestError(
            name,
            f"prompt ({len(prompt)} tokens) + continuation ({plan.n_targets} tokens) is over "
            f"the model's max_tokens ({loaded.max_tokens})",
            code=413,
        )
    plan.tokens = token_rows(loaded, prompt, plan.targets, plan.offsets, plan.text)
    return plan


def decoded_offsets(tokenizer, ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """The generated text and each token's span in it (from incremental decoding)."""
    ends = [len(tokenizer.decode(ids[: i + 1])) for i in range(len(ids))]
    return tokenizer.decode(ids), [(a, max(a, b)) for a, b in zip([0] + ends[:-1], ends)]


def check_size(loaded: LoadedModel, request: GradientsRequest, length: int, n_t: int) -> None:
    """413 naming `return` where the answer's tensors would pass the archive's limit."""
    width = loaded.embedding.embedding_dim
    check_gradients_size(request, loaded.settings, length, width, n_t)
