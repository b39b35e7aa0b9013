"""Wire formats: orjson JSON (float32 as its shortest exact text), float16-base64, .npz and the
old server's gzip(torch.save), and the response-size bounds that let us refuse a response
before computing it."""

import base64
import gzip
import io
from typing import Any

import numpy as np
import orjson
import torch

from ..contract.errors import RequestError

# Upper bounds of bytes per value on the wire. orjson writes a float32 in at most 15
# characters ("-1.1754944e-38") plus a separator.
BYTES_PER_VALUE = {"json": 16, "float16-base64": 8 / 3, "npz": 4, "torch-gzip": 4}


def encode_array(values: torch.Tensor, encoding: str) -> dict:
    """`json`: the float32 values as a numpy array (orjson writes it as nested lists);
    `float16-base64`: little-endian float16, base64."""
    values = values.detach().to("cpu")
    if encoding == "json":
        return {"encoding": "json", "shape": list(values.shape), "data": values.float().contiguous().numpy()}
    if encoding == "float16-base64":
        raw = values.to(torch.float16).contiguous().numpy().astype("<f2", copy=False).tobytes()  # torch: 5x numpy
        return {
            "encoding": "float16-base64",
            "dtype": "float16",
            "byteorder": "little",
            "shape": list(values.shape),
            "data": base64.b64encode(raw).decode("ascii"),
        }
    raise ValueError(f"unknown encoding {encoding}")


def encode_index_array(indices: torch.Tensor, encoding: str, n_columns: int) -> dict:
    """Column indices: nested JSON integers, or (beside float16-base64 values) base64 of
    little-endian uint16 (uint32 past 65,536 columns)."""
    indices = indices.detach().to("cpu")
    if encoding == "json":
        return {"encoding": "json", "shape": list(indices.shape), "data": indices.contiguous().numpy()}
    dtype = "uint16" if n_columns <= 1 << 16 else "uint32"
    raw = indices.contiguous().numpy().astype("<u2" if dtype == "uint16" else "<u4").tobytes()
    return {
        "encoding": "base64",
        "dtype": dtype,
        "byteorder": "little",
        "shape": list(indices.shape),
        "data": base64.b64encode(raw).decode("ascii"),
    }


def encode_sparse(rows: dict[str, torch.Tensor], encoding: str) -> dict:
    """A `top_k_rows` result as the contract's "topk-per-row" block; values in `encoding`."""
    values, kept, rest = rows["values"], rows["kept"], rows["rest"]
    n = values.shape[-2]
    total = kept + rest
    fraction = torch.where(total > 0, kept / total.clamp_min(torch.finfo(total.dtype).tiny), torch.ones_like(kept))
    return {
        "encoding": "topk-per-row",
        "shape": [*values.shape[:-1], n],
        "k": values.shape[-1],
        "values": encode_array(values, encoding),
        "columns": encode_index_array(rows["columns"], encoding, n),
        "kept": encode_array(kept, encoding),
        "rest": encode_array(rest, encoding),
        "min_kept_fraction": float(fraction.min()) if fraction.numel() else 1.0,
    }


def json_bytes(obj) -> bytes:
    """Compact JSON through orjson: numpy arrays natively, float32 written exactly and short."""
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)


def npz_bytes(arrays: dict) -> bytes:
    """An .npz readable with numpy alone (`np.load(io.BytesIO(body))`, no pickle): tensors as
    float32/int64 arrays, strings (e.g. a JSON summary) as 0-d unicode arrays."""
    out: dict[str, Any] = {}  # name → array (Any: savez's keywords also include allow_pickle)
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


# --- refusing a response before computing it ------------------------------------------------


def check_response_size(size: int, limit: int, field: str, what: str, hints: list[str]) -> None:
    """413 naming `field` when `size` bytes would pass the archive's limit."""
    if size > limit:
        raise RequestError(
            field,
            f"{what} would make a response of about {size / 2**20:.0f} MiB, over the "
            f"{limit / 2**20:.0f} MiB limit; ask for {', or '.join(hints)}",
            code=413,
        )


def matrices_response_bytes(n_matrices: int, n: int, encoding: str, k: int | None = None) -> int:
    """An upper bound of `n_matrices` T×T maps on the wire: dense, or `k` per row (values,
    columns, kept and rest; JSON brackets included)."""
    per_value = BYTES_PER_VALUE[encoding]
    if k is None:
        return int(n_matrices * n * n * per_value)
    rows, k = n_matrices * n, min(k, n)
    per_index = len(str(n - 1)) + 1 if encoding == "json" else (2 if n <= 1 << 16 else 4) * 4 / 3
    return int(rows * (k * (per_value + per_index) + 2 * per_value + 8))


def gradients_response_bytes(
    returns, fmt: str, n_steps: int, n_tokens: int, width: int, n_targets: int | None = None
) -> int:
    """An upper bound of the encoded gradients response, known once the text is tokenized: one
    target, or a continuation's `n_targets` rows (each over at most n_tokens tokens)."""
    n, t, k = n_steps, n_tokens, n_targets or 1
    binary = fmt != "json"
    values = {
        "attributions": k * t * (width + 1) if binary else 4 * k * t,  # full IG only in binary formats
        "intermediate_gradients": k * n * t * width,
        "intermediates": n * t * width,
        "step_sizes": 2 * n,  # with the alphas
        "path_scores": n * (k + 1),  # with the gradient norms
    }
    summary = (4096 + 512 * t + 1024 * k) * (4 if fmt == "npz" else 1)  # npz: the JSON as UTF-32
    return summary + int(BYTES_PER_VALUE[fmt] * sum(values[r] for r in returns))


def check_gradients_size(request, settings, n_tokens: int, width: int, n_targets: int | None = None) -> None:
    """413 naming `return` before computing, when the answer would pass the archive's limit."""
    n = request.most_steps(settings)
    size = gradients_response_bytes(request.returned, request.format, n, n_tokens, width, n_targets)
    hints = [
        'a lower "max_n_steps"' if request.n_steps == "auto" else 'fewer "n_steps"',
        "a shorter continuation" if n_targets else "a shorter text",
    ]
    if {"intermediate_gradients", "intermediates"} & set(request.returned):
        hints.insert(0, 'leave "intermediate_gradients"/"intermediates" out of "return" (the JSON summary is small)')
        if request.format == "json":
            hints.insert(0, '"format": "npz" (float32, ~4x smaller than JSON)')
    what = f"{n_tokens} tokens x {n_targets} targets x {n} steps" if n_targets else f"{n_tokens} tokens x {n} steps"
    check_response_size(size, settings.max_response_bytes, "return", what, hints)
