"""The contract's array blocks decoded with numpy (no torch): what clients, the notebook
views and the KServe envelopes read back.

>>> decode_array({"encoding": "json", "shape": [2], "data": [0.5, 1.0]})
array([0.5, 1. ], dtype=float32)
"""

import base64

import numpy as np


def decode_array(block: dict, widen: bool = True) -> np.ndarray:
    """A value block: `json` (nested lists, or a numpy array in process) as float32, or
    `float16-base64` (little-endian float16) widened exactly to float32 (or kept float16
    with widen=False: KServe's v2 answers FP16 as FP16)."""
    shape = tuple(block["shape"])
    if block["encoding"] == "float16-base64":
        values = np.frombuffer(base64.b64decode(block["data"]), dtype="<f2").reshape(shape)
        return values.astype(np.float32) if widen else values
    if block["encoding"] == "json":
        return np.asarray(block["data"], dtype=np.float32).reshape(shape)
    raise ValueError(f"unknown array encoding {block['encoding']!r}")


def decode_index_array(block: dict) -> np.ndarray:
    """Column indices as int64: `json` nested integers, or `base64` little-endian uint16/uint32."""
    shape = tuple(block["shape"])
    if block["encoding"] == "base64":
        dtype = {"uint16": "<u2", "uint32": "<u4"}[block["dtype"]]
        return np.frombuffer(base64.b64decode(block["data"]), dtype=dtype).astype(np.int64).reshape(shape)
    return np.asarray(block["data"], dtype=np.int64).reshape(shape)


def decode_rows(block: dict) -> dict[str, np.ndarray]:
    """A "topk-per-row" block as numpy: values and columns [..., T, k], kept and rest [..., T]."""
    return {
        "values": decode_array(block["values"]),
        "columns": decode_index_array(block["columns"]),
        "kept": decode_array(block["kept"]),
        "rest": decode_array(block["rest"]),
    }


def decode_maps(block: dict) -> np.ndarray:
    """Any attention or rollout block as dense float32 [..., T, T]. A sparse block comes back
    with zeros where values were not sent (each row's `rest` says how much mass they held)."""
    if block["encoding"] != "topk-per-row":
        return decode_array(block)
    rows = decode_rows(block)
    dense = np.zeros(tuple(block["shape"]), dtype=np.float32)
    np.put_along_axis(dense, rows["columns"], rows["values"], axis=-1)
    return dense
