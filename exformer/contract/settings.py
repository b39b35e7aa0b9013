"""Per-archive settings: the `handler:` block of a model-config.yaml, typed and strict.

A bad value fails the worker's load with one line naming the setting (and the archive),
instead of failing every request later:

>>> Settings.from_mapping({"dtype": "bf16"})
Traceback (most recent call last):
...
ValueError: handler setting 'dtype': input should be 'auto', 'float32' or 'bfloat16', got "bf16"
"""

from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Keep equal to max_response_size in config.properties (a test checks): we refuse a
# response that TorchServe would refuse anyway, before computing it.
MAX_RESPONSE_BYTES = 134_217_728


class Settings(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    max_tokens: int | None = Field(
        None, ge=1, description="Longer inputs are truncated (and say so); null: the model's own position limit."
    )
    max_text_chars: int = Field(100_000, ge=1, description="Longer texts are refused with a 413.")
    max_response_bytes: int = Field(
        MAX_RESPONSE_BYTES,
        ge=1,
        description="Answers that would be larger are refused with a 413 before computing; keep equal to "
        "max_response_size in config.properties.",
    )
    default_top_k: int = Field(
        5, ge=1, description="Predictions per token when a request gives no top_k; a continuation's alternatives."
    )
    max_n_steps: int = Field(
        500,
        ge=1,
        description='Gradients: the most path points a request may ask for (n_steps, or max_n_steps with "auto").',
    )
    max_new_tokens: int = Field(
        64, ge=1, description="Gradients of a causal LM: the most tokens a `generate` request may ask for."
    )
    max_estimated_seconds: float = Field(
        300.0,
        gt=0,
        description="Causal LMs: a continuation request estimated to take longer on this worker (`dry_run` shows the "
        "estimate) is refused with a 413 naming cheaper options. A worker uses at most its deadline_seconds: what "
        "would stop at the deadline is refused before it starts.",
    )
    deadline_seconds: float | None = Field(
        None,
        gt=0,
        description="A request still running after this many seconds stops between two chunks of its work and is "
        'answered 503 (type "Timeout", how far it got, cheaper options), before TorchServe\'s responseTimeout would '
        "kill the worker; must be below responseTimeout. null: 80% of the model-config's responseTimeout "
        "(TorchServe's default 120 s when unset); none in a notebook.",
    )
    max_ablations: int = Field(
        1024,
        ge=2,
        description="occlusion/contextcite: the most ablated prompts a request may ask for (contextcite: n_ablations + "
        "n_holdout).",
    )
    internal_batch_size: int | None = Field(
        None,
        ge=1,
        description="Gradients: path points per forward and backward; null: by length (~16 at 128 tokens, 2 at 512 on "
        "CPU); halves out of memory.",
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="Threads per worker; null: cores ÷ the model-config's maxWorkers, so that scaling up never "
        "oversubscribes the cores.",
    )
    devices_per_worker: int = Field(
        1, ge=1, description="GPUs per worker; more than 1 splits the model's layers over them (Scaling)."
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description='Gradients: what a request computes in unless it asks (its `dtype`): "auto" and '
        '"float32" are float32 on every CPU and GPU, so an answer does not depend on the machine; "bfloat16" is bf16 '
        "autocast, faster and less faithful, and needs native bf16 (a CUDA GPU with bf16, or a CPU running torch's "
        "AVX-512 kernels with amx_bf16 or avx512_bf16): where it would be emulated (~34x slower) it fails the worker's "
        "load. Every gradients answer says its dtype.",
    )
    trim_heap_mb: int = Field(
        64,
        ge=0,
        description="After a batch, freed heap above this many MB goes back to the OS (glibc malloc_trim, ~10-20 ms); "
        "0: never.",
    )

    @classmethod
    def from_mapping(cls, values: dict | None) -> "Settings":
        """Settings from a model-config's `handler:` block; ValueError naming the first bad setting."""
        try:
            return cls.model_validate(dict(values or {}))
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            name = ".".join(str(p) for p in first["loc"])
            if first["type"] == "extra_forbidden":
                raise ValueError(f"unknown handler setting '{name}'; known: {sorted(cls.model_fields)}") from None
            msg = first["msg"][0].lower() + first["msg"][1:]
            got = orjson.dumps(first.get("input"), default=repr).decode()
            raise ValueError(f"handler setting '{name}': {msg}, got {got}") from None
