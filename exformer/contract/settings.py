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

    max_tokens: int | None = Field(None, ge=1, description="None: the model's own position limit")
    max_text_chars: int = Field(100_000, ge=1, description="beyond this a request is absurd: 413")
    max_response_bytes: int = Field(MAX_RESPONSE_BYTES, ge=1)
    default_top_k: int = Field(5, ge=1)
    max_n_steps: int = Field(500, ge=1, description="gradients: path points per request")
    max_new_tokens: int = Field(64, ge=1, description="gradients of a causal LM: most tokens a `generate` request asks for")
    internal_batch_size: int | None = Field(None, ge=1, description="gradients: path points per forward; None: by length")
    torch_threads: int | None = Field(None, ge=1, description="None: cores // the model-config's maxWorkers")
    devices_per_worker: int = Field(1, ge=1, description=">1 shards the layers over consecutive devices")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="gradients: bf16 autocast only where native (a GPU, AMX/AVX512-BF16), else "
        "float32; an explicit bfloat16 where emulated (~34x slower) fails the load (README)")
    trim_heap_mb: int = Field(64, ge=0, description="freed heap above this goes back to the OS after a batch; 0: never")

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
