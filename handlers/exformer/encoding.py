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


# --- binary formats for gradients ---------------------------------------------------------

import gzip  # noqa: E402
import io  # noqa: E402

import numpy as np  # noqa: E402

BYTES_PER_VALUE.update({"npz": 4, "torch-gzip": 4})  # float32, stored as is


def npz_bytes(arrays: dict) -> bytes:
    """An .npz readable with numpy alone (`np.load(io.BytesIO(body))`, no pickle): tensors as
    float32/int64 arrays, strings (e.g. a JSON summary) as 0-d unicode arrays."""
    out = {}
    for name, value in arrays.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().to("cpu")
            value = value.float() if value.is_floating_point() else value
            value = value.numpy()
        out[name] = np.asarray(value)
    buffer = io.BytesIO()
    np.savez(buffer, **out)
    return buffer.getvalue()


def torch_gzip_bytes(tensors: dict) -> bytes:
    """gzip(torch.save(dict)): the old int-gradients-server's response, loadable with
    `torch.load(gzip.open(f), weights_only=True)`."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, buffer)
    return gzip.compress(buffer.getvalue(), compresslevel=1)
