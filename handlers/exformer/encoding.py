"""Wire formats for tensors and responses."""

import base64
import json

import torch

# Upper bounds of bytes per value on the wire, used to refuse a response before computing it.
BYTES_PER_VALUE = {"json": 24, "float16-base64": 8 / 3}


def encode_array(values: torch.Tensor, encoding: str) -> dict:
    """`json`: nested lists, exact float32 values; `float16-base64`: little-endian float16."""
    values = values.detach().to("cpu", torch.float32)
    if encoding == "json":
        return {"encoding": "json", "shape": list(values.shape), "data": values.tolist()}
    if encoding == "float16-base64":
        raw = values.to(torch.float16).numpy().astype("<f2").tobytes()
        return {
            "encoding": "float16-base64",
            "dtype": "float16",
            "byteorder": "little",
            "shape": list(values.shape),
            "data": base64.b64encode(raw).decode("ascii"),
        }
    raise ValueError(f"unknown encoding {encoding}")


def json_bytes(obj) -> bytes:
    """Compact JSON (TorchServe's own dumps would indent every number of a tensor)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")
