"""What every explanation answer is made of, in one place: responses checked against the
contract's models where they are built, the model-details answer, attribution rows, and a
gradients answer (`GradientsAnswer`: its JSON summary, its full tensors, its bytes on the wire)."""

from dataclasses import dataclass
from typing import Any

import orjson
import torch
from pydantic import BaseModel, ValidationError

from ..contract.requests import GradientsRequest
from ..contract.responses import AblationResponse, GenerationResponse, GradientsResponse, ModelDetailsResponse
from ..core.continuation import ContinuationGradients
from ..core.integrated import PathGradients
from ..core.loading import LoadedModel
from .encoding import encode_array, json_bytes, npz_bytes, torch_gzip_bytes


class ContractBroken(RuntimeError):
    """A response we built does not match the contract: a bug of ours, answered 500."""


def checked(model: type[BaseModel], response: dict) -> dict:
    """`response` itself, once validated against its response model: nothing leaves the explain
    layer that the JSON Schema does not describe."""
    try:
        model.model_validate(response)
    except ValidationError as error:
        raise ContractBroken(f"{model.__name__}: {error}") from None
    return response


def with_evaluation(answer, block: dict):
    """An answer (a GradientsAnswer, or a forward-only method's dict) with its `evaluation`, checked again."""
    if isinstance(answer, GradientsAnswer):
        answer.summary["evaluation"] = block
        answer.__post_init__()
        return answer
    return checked(AblationResponse, {**answer, "evaluation": block})


def details_response(loaded: LoadedModel) -> dict:
    """The answer to an empty request: the model's details."""
    return checked(ModelDetailsResponse, {"model": loaded.details()})


def attribution_values(raw: torch.Tensor) -> dict:
    """The contract's `Attributions`: raw values and the same divided by their L2 norm."""
    norm = raw.norm()
    return {"raw": raw.tolist(), "normalized": (raw / norm if norm > 0 else raw).tolist()}


@dataclass
class GradientsAnswer:
    """One gradients request's answer: the JSON summary, everything the pass saw (a
    `core.integrated.PathGradients`, or a continuation's `core.continuation.ContinuationGradients`),
    and how to put it on the wire in the request's format."""

    request: GradientsRequest
    summary: dict
    path: PathGradients | ContinuationGradients

    def __post_init__(self):
        checked(GenerationResponse if "targets" in self.summary else GradientsResponse, self.summary)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The old server's layout: IG [1, T, E] (a continuation: [targets, L, E]), per-step
        tensors [n, T, E] (a continuation's gradients: [targets, n, L, E]), step sizes [n]."""
        path = self.path
        made = {
            "attributions": lambda: {"integrated_gradients": _one_row(path.integrated_gradients)},
            "intermediate_gradients": lambda: {"intermediate_gradients": path.intermediate_gradients},
            "step_sizes": lambda: {"step_sizes": path.step_sizes},
            "intermediates": lambda: {"intermediates": path.intermediates},
            "path_scores": lambda: {"path_scores": path.path_scores},
        }
        return {k: v for item in self.request.returned for k, v in made[item]().items()}

    def summary_arrays(self) -> dict[str, torch.Tensor]:
        """What an npz adds to the tensors: the attributions ([T], or a continuation's [targets, L]
        with each row zero-padded past its own length), alphas and gradient norms."""
        summary = self.summary
        arrays: dict[str, torch.Tensor] = {}
        if "targets" in summary:
            rows = [t["attributions"]["raw"] for t in summary["targets"] if t.get("attributions")]
            if rows:
                matrix = torch.zeros(len(rows), len(summary["tokens"]))
                for i, row in enumerate(rows):
                    matrix[i, : len(row)] = torch.tensor(row)
                arrays["attributions"] = matrix
        elif "attributions" in summary:
            arrays["attributions"] = torch.tensor(summary["attributions"]["raw"])
        for name in ("alphas", "gradient_norms"):
            if name in summary:
                arrays[name] = torch.tensor(summary[name], dtype=torch.float64)
        return arrays

    def body(self, fmt: str | None = None) -> tuple[bytes, str]:
        """(bytes, content type) in the request's format (or `fmt`)."""
        fmt = fmt or self.request.format
        if fmt == "torch-gzip":
            return torch_gzip_bytes(self.tensors()), "application/gzip"
        if fmt == "npz":
            arrays: dict[str, Any] = {**self.tensors(), **self.summary_arrays()}
            arrays["summary"] = orjson.dumps(self.summary).decode()
            return npz_bytes(arrays), "application/x-npz"
        return json_bytes(self.to_json()), "application/json"

    def to_json(self) -> dict:
        """The summary plus, only if asked in `return`, the full per-step tensors."""
        out = dict(self.summary)
        for name in ("intermediate_gradients", "intermediates"):
            if name in self.request.returned:
                out[name] = encode_array(getattr(self.path, name), "json")
        return out


def _one_row(integrated: torch.Tensor) -> torch.Tensor:
    return integrated[None] if integrated.dim() == 2 else integrated
