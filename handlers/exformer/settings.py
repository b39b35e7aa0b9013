"""Per-model serving limits, read from the `handler:` section of a model-config.yaml."""

from dataclasses import dataclass, fields

# Keep equal to max_response_size in config.properties (a test checks): we refuse a
# response that TorchServe would refuse anyway, before computing it.
MAX_RESPONSE_BYTES = 134_217_728


@dataclass(frozen=True)
class Settings:
    max_tokens: int | None = None  # None: the model's own position limit
    max_text_chars: int = 100_000  # beyond this a request is absurd: 413
    max_response_bytes: int = MAX_RESPONSE_BYTES
    default_top_k: int = 5
    max_n_steps: int = 500  # gradients: path points per request
    internal_batch_size: int | None = None  # gradients: path points per forward; None = by length
    torch_threads: int | None = None  # None: cores // the model-config's maxWorkers
    devices_per_worker: int = 1  # >1 shards the layers over consecutive devices
    dtype: str = "float32"  # or "bfloat16": autocast, faster on AMX CPUs, see README
    trim_heap_mb: int = 64  # freed heap above this goes back to the OS after a batch; 0: never

    @classmethod
    def from_mapping(cls, values: dict | None) -> "Settings":
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown handler settings {unknown}; known: {sorted(known)}")
        settings = cls(**values)
        if settings.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"handler setting dtype: float32 or bfloat16, got {settings.dtype!r}")
        return settings
