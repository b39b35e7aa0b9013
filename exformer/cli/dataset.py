"""Datasets in and out for `exformer explain`: the pure parts, no server and no model.

- **Readers** stream rows from CSV, TSV (pyarrow.csv.open_csv), JSONL (a line reader) and
  Parquet (ParquetFile.iter_batches) in batches, never the whole file; `count_rows` is the
  cheap pass for a progress bar's total (Parquet metadata, counting lines otherwise).
- **Records**: one answer (or one refusal) per input row → one output row
  (`gradients_record`, `attention_record`, `error_record`), with a fixed Arrow schema per run;
  a causal LM's continuation (a chat answer, its sources) is one row too, its per-source,
  per-sentence and per-message values as JSON lists; with `evaluate`, the faithfulness of the
  row's explanation (its areas, ERASER's two numbers, their random means, the win rates; a
  continuation's whole answer) as columns, null where it was not asked.
- **Output**: a directory of Parquet shards `part-NNNNN.parquet`, each complete or absent
  (written to a hidden temporary name in the same directory, fsynced, then `os.replace`d),
  optional per-row tensors in `_tensors/` (written the same way), and the resume index: the
  row numbers already written, read back from the shards.

>>> rows = [r for batch in read_rows("reviews.csv", Columns(text="review")) for r in batch]  # doctest: +SKIP
"""

import bz2
import fcntl
import gzip
import io
import lzma
import math
import os
import re
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..contract.errors import json_excerpt
from ..contract.responses import relative_delta
from ..contract.vocabulary import FORWARD_ATTRIBUTIONS

FORMATS = ("csv", "tsv", "jsonl", "parquet")
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_COMPRESSED: dict[str, Callable[..., Any]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
BATCH_ROWS = 1024
CSV_BLOCK_BYTES = 8 << 20  # a CSV value must fit in one block; texts over 100,000 characters are refused anyway
TENSORS_DIR = "_tensors"  # "_": pyarrow's dataset discovery skips it, so pq.read_table(out) reads the shards only
SHARD_PATTERN = re.compile(r"^part-(\d+)\.parquet$")
METADATA_KEY = b"exformer"


class DatasetError(ValueError):
    """The input or output directory cannot be used; the message says why, for the user."""


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Columns:
    """Which input columns hold what; only `text` is required, and not even that with
    `messages` (a row's conversation replaces its text). `messages` and `sources` hold JSON
    arrays (as text, or the arrays themselves in JSONL and Parquet)."""

    text: str = "text"
    pair: str | None = None
    target: str | None = None
    id: str | None = None
    messages: str | None = None
    sources: str | None = None
    continuation: str | None = None

    def names(self) -> list[str]:
        return list(
            dict.fromkeys(
                c
                for c in (self.text, self.pair, self.target, self.id, self.messages, self.sources, self.continuation)
                if c
            )
        )

    def optional(self) -> set[str]:
        """Columns a file may lack: the text, when conversations can replace it."""
        return {self.text} if self.messages else set()

    def continuations(self) -> bool:
        """Whether rows can explain a continuation (and the output needs its columns)."""
        return bool(self.messages or self.sources or self.continuation)


@dataclass
class Row:
    """One input row, numbered from 0 in file order (data rows; a CSV header is not a row)."""

    number: int
    text: str | None  # None: not sent (the row's messages replace it)
    pair: str | None = None
    target: int | str | None = None
    id: str | None = None
    problem: str | None = None  # the input row is unreadable (a JSONL line that is not an object, a bad JSON cell)
    messages: list | None = None
    sources: list | None = None
    continuation: str | None = None


def detect_format(path: str | Path, given: str | None = None) -> str:
    """csv, tsv, jsonl or parquet: `given`, else from the name (a .gz/.bz2/.xz after it is allowed)."""
    if given:
        if given not in FORMATS:
            raise DatasetError(f"unknown format {given!r}; one of {', '.join(FORMATS)}")
        return given
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    fmt = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise DatasetError(f"{path}: cannot tell the format from the name; give --format ({', '.join(FORMATS)})")
    return fmt


def _open_binary(path: Path):
    opener = _COMPRESSED.get(path.suffix.lower())
    return opener(path, "rb") if opener else open(path, "rb")


def count_rows(path: str | Path, fmt: str | None = None) -> int:
    """Data rows in the file, cheaply: Parquet's metadata; otherwise a pass over the bytes
    counting line ends (outside double quotes for CSV/TSV, so quoted multi-line values count
    once; non-blank lines for JSONL). Only for a progress bar: the readers are the truth."""
    path = Path(path)
    fmt = detect_format(path, fmt)
    if fmt == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    lines, quoted, last = 0, False, b"\n"
    blank_jsonl = 0
    with _open_binary(path) as f:
        while chunk := f.read(1 << 22):
            if fmt == "jsonl":
                lines += chunk.count(b"\n")
                blank_jsonl += len(re.findall(rb"(?m)^[ \t\r]*\n", chunk))
            else:
                parts = chunk.split(b'"')
                for i, part in enumerate(parts):
                    if i:
                        quoted = not quoted
                    if not quoted:
                        lines += part.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        lines += 1  # the last line has no line end
    if fmt == "jsonl":
        return max(0, lines - blank_jsonl)
    return max(0, lines - 1)  # the header


def read_rows(
    path: str | Path, columns: Columns, fmt: str | None = None, batch_rows: int = BATCH_ROWS
) -> Iterator[list[Row]]:
    """Rows in batches, streamed: memory holds one batch (and, for CSV, one block) at a time.
    Raises DatasetError naming a missing column (with the columns the file has)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    fmt = detect_format(path, fmt)
    if fmt == "jsonl":
        yield from _read_jsonl(path, columns, batch_rows)
        return
    batches = _parquet_batches(path, columns, batch_rows) if fmt == "parquet" else _csv_batches(path, columns, fmt)
    number = 0
    for batch in batches:
        values = {name: batch.column(name).to_pylist() for name in batch.schema.names}
        for start in range(0, batch.num_rows, batch_rows):
            rows = []
            for i in range(start, min(start + batch_rows, batch.num_rows)):
                rows.append(_row(number, {name: values[name][i] for name in values}, columns, fmt))
                number += 1
            yield rows


def _check_columns(path: Path, have: list[str], columns: Columns) -> list[str]:
    """The columns to read (raises DatasetError naming a required one the file lacks)."""
    missing = [c for c in columns.names() if c not in have and c not in columns.optional()]
    if missing:
        raise DatasetError(f"{path}: no column {', '.join(map(repr, missing))}; its columns: {', '.join(have)}")
    return [c for c in columns.names() if c in have]


def _csv_batches(path: Path, columns: Columns, fmt: str) -> Iterator[pa.RecordBatch]:
    parse = pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",", newlines_in_values=True)
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False)
    try:
        probe = pacsv.open_csv(path, read_options=read, parse_options=parse)  # reads the first block only
        have = probe.schema.names
        probe.close()
    except pa.ArrowInvalid as error:
        raise DatasetError(f"{path}: not readable as {fmt.upper()}: {error}") from None
    names = _check_columns(path, have, columns)
    # Every column we use is read as text (no type inference per block, so a column that looks
    # numeric in the first block cannot fail later); empty cells are empty strings.
    convert = pacsv.ConvertOptions(
        include_columns=names,
        column_types={c: pa.string() for c in names},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    reader = pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    try:
        while True:
            try:
                yield reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as error:
                raise DatasetError(f"{path}: {error}") from None
    finally:
        reader.close()


def _parquet_batches(path: Path, columns: Columns, batch_rows: int) -> Iterator[pa.RecordBatch]:
    file = pq.ParquetFile(path)
    names = _check_columns(path, file.schema_arrow.names, columns)
    yield from file.iter_batches(batch_size=batch_rows, columns=names)


def _read_jsonl(path: Path, columns: Columns, batch_rows: int) -> Iterator[list[Row]]:
    rows, number = [], 0
    seen_text = False
    keys = [k for k in (columns.text, columns.messages) if k]  # what a row needs one of
    wanted = " or ".join(map(repr, keys))
    with _open_binary(path) as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
                problem = None if isinstance(obj, dict) else f"line {line_number}: not a JSON object"
            except orjson.JSONDecodeError as error:
                obj, problem = None, f"line {line_number}: not JSON ({error})"
            if problem:
                rows.append(Row(number, "", problem=problem))
            else:
                seen_text = seen_text or any(k in obj for k in keys)
                rows.append(_row(number, {name: obj.get(name) for name in columns.names()}, columns, "jsonl"))
            number += 1
            if len(rows) == batch_rows:
                if not seen_text:
                    raise DatasetError(f"{path}: no row of the first {number} has the key {wanted}")
                yield rows
                rows = []
    if number and not seen_text:
        raise DatasetError(f"{path}: no row has the key {wanted}")
    if rows:
        yield rows


def _row(number: int, values: dict, columns: Columns, fmt: str) -> Row:
    text = values.get(columns.text)
    pair = values[columns.pair] if columns.pair else None
    messages, bad_messages = _json_array(values.get(columns.messages), columns.messages)
    sources, bad_sources = _json_array(values.get(columns.sources), columns.sources)
    continuation = values.get(columns.continuation) if columns.continuation else None
    problems = [f"row {number}: {p}" for p in (bad_messages, bad_sources) if p]
    return Row(
        number=number,
        # a missing text is sent as "" so that the model's own validation names it ("text: must not be empty");
        # beside messages it is not sent (a text there too is sent, and refused as the server refuses both)
        text=(
            None
            if messages is not None and text in (None, "")
            else ""
            if text is None
            else text
            if isinstance(text, str)
            else str(text)
        ),
        pair=None if pair in (None, "") else pair if isinstance(pair, str) else str(pair),
        target=_target(values[columns.target], fmt) if columns.target else None,
        id=None if not columns.id or values[columns.id] is None else str(values[columns.id]),
        problem="; ".join(problems) or None,
        messages=messages,
        sources=sources,
        continuation=None if continuation in (None, "") else str(continuation),
    )


def _json_array(value: Any, column: str | None) -> tuple[list | None, str | None]:
    """A cell holding a JSON array, as text (CSV) or the array itself (JSONL, Parquet lists):
    (the list, None), or (None, why not) naming the column. Empty or absent: (None, None)."""
    if column is None or value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as error:
            return None, f"column {column!r} is not JSON ({error})"
    if not isinstance(value, list):
        return None, f"column {column!r} is not a JSON array: {json_excerpt(value)}"
    return value, None


def _target(value: Any, fmt: str) -> int | str | None:
    """A class index / token id as an int, a label / token text as a string, empty as None
    (the model's own prediction). CSV/TSV cells are text: one of digits only is an index."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else int(value) if value.is_integer() else str(value)
    if isinstance(value, str) and fmt in ("csv", "tsv") and value.strip().isdigit():
        return int(value)
    return value if isinstance(value, str) else str(value)


# --- records -----------------------------------------------------------------------------------

_COMMON = [
    ("row", pa.int64()),
    ("id", pa.string()),
    ("text", pa.string()),
    ("text_pair", pa.string()),
    ("prediction", pa.string()),
    ("probabilities", pa.map_(pa.string(), pa.float64())),
]
_TOKENS = [
    ("n_tokens", pa.int32()),
    ("truncated", pa.bool_()),
    ("tokens", pa.list_(pa.string())),
    ("surface", pa.list_(pa.string())),
    ("start", pa.list_(pa.int32())),
    ("end", pa.list_(pa.int32())),
    ("segment", pa.list_(pa.int8())),
]
_GRADIENTS = [
    ("attribution", pa.string()),  # the method that answered
    ("target", pa.string()),
    ("target_index", pa.int64()),
    ("target_score", pa.float64()),
    ("baseline_score", pa.float64()),
    ("convergence_delta", pa.float64()),
    ("relative_delta", pa.float64()),
    ("n_steps", pa.int32()),
    ("converged", pa.bool_()),  # the points used; n_steps "auto": tolerance reached
    ("attributions", pa.list_(pa.float64())),
]
_CONTINUATION = [  # a continuation's target_score etc. are the sums over its target tokens (F = Σ_t F_t)
    ("messages", pa.string()),
    ("sources", pa.string()),  # the row's, as JSON
    ("continuation", pa.string()),
    ("generated", pa.bool_()),
    ("unit", pa.string()),
    ("target_tokens", pa.list_(pa.string())),
    ("target_scores", pa.list_(pa.float64())),
    ("within_tolerance", pa.bool_()),
    # the whole continuation's, as JSON lists: [{"id", "text", "attribution"}] ([{"message", "role", "attribution"}])
    ("source_attributions", pa.string()),
    ("sentence_attributions", pa.string()),
    ("message_attributions", pa.string()),
    ("unit_attributions", pa.string()),
]
# `evaluate`: one row of the answer's `evaluation` (a classifier's; a continuation's whole answer), null when not asked
EVALUATION_NUMBERS = ("deletion_aopc", "insertion_aopc", "comprehensiveness", "sufficiency")
_EVALUATION = [
    ("evaluation_unit", pa.string()),
    ("evaluation_n_units", pa.int32()),
    *[(name, pa.float64()) for name in EVALUATION_NUMBERS],
    *[(f"random_{name}", pa.float64()) for name in EVALUATION_NUMBERS],  # the mean over the random orders
    ("win_rate_deletion", pa.float64()),
    ("win_rate_insertion", pa.float64()),
]
_TAIL = [("tensors", pa.string()), ("error", pa.string()), ("error_field", pa.string()), ("error_code", pa.int32())]
REDUCES = ("mean", "max", "none")


def _attention_type(reduce: str) -> pa.DataType:
    depth = 4 if reduce == "none" else 3  # [L, H, T, T] or [L, T, T]
    kind = pa.float32()
    for _ in range(depth):
        kind = pa.list_(kind)
    return kind


def schema(kind: str, reduce: str = "mean", settings: dict | None = None, continuations: bool = False) -> pa.Schema:
    """The output schema of a run: the same for every shard (and every resumed run); the
    continuation columns only where rows can have continuations (a classifier's stays as it was)."""
    if kind == "gradients":
        fields = _COMMON + _TOKENS + _GRADIENTS + (_CONTINUATION if continuations else []) + _EVALUATION + _TAIL
    elif kind == "attention":
        fields = (
            _COMMON
            + _TOKENS
            + [
                ("layers", pa.list_(pa.int32())),
                ("heads", pa.list_(pa.int32())),
                ("reduce", pa.string()),
                ("attention", _attention_type(reduce)),
            ]
            + _TAIL
        )
    else:
        raise ValueError(f"kind must be gradients or attention, got {kind!r}")
    metadata = {METADATA_KEY: orjson.dumps(settings, option=orjson.OPT_SORT_KEYS)} if settings is not None else None
    return pa.schema(fields, metadata=metadata)


def _input_columns(row: Row) -> dict:
    return {
        "row": row.number,
        "id": row.id,
        "text": row.text,
        "text_pair": row.pair,
        "messages": _json_text(row.messages),
        "sources": _json_text(row.sources),
        "continuation": row.continuation,
    }


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _token_columns(response: dict) -> dict:
    tokens = response["tokens"]
    return {
        "n_tokens": len(tokens),
        "truncated": response.get("truncated"),
        "tokens": [t["text"] for t in tokens],
        "surface": [t["surface"] for t in tokens],
        "start": [t["start"] for t in tokens],
        "end": [t["end"] for t in tokens],
        "segment": [t["segment"] for t in tokens],
    }


def _prediction_columns(prediction: dict | None) -> dict:
    """Classifier: its label and every label's probability. Causal LM: the top next token and
    the top-k next tokens' probabilities (by decoded text; the first of equal texts)."""
    if not prediction:
        return {"prediction": None, "probabilities": None}
    if "label" in prediction:
        return {"prediction": prediction["label"], "probabilities": list(prediction["probabilities"].items())}
    probabilities: dict[str, float] = {}
    for candidate in prediction["next_tokens"]:
        probabilities.setdefault(candidate["text"], candidate["prob"])
    return {
        "prediction": prediction["next_tokens"][0]["text"] if prediction["next_tokens"] else None,
        "probabilities": list(probabilities.items()),
    }


def gradients_record(row: Row, response: dict, tensors: str | None = None) -> dict:
    """An answered gradients row: the JSON summary (`format: json`, or an npz's `summary`)."""
    if "targets" in response:  # a continuation: one target per token
        return {
            **_input_columns(row),
            **_token_columns(response),
            **_continuation_columns(response),
            **evaluation_columns(response.get("evaluation")),
            "tensors": tensors,
        }
    target = response["target"]
    attributions = response.get("attributions")
    return {
        **_input_columns(row),
        **_prediction_columns(response.get("prediction")),
        **_token_columns(response),
        **evaluation_columns(response.get("evaluation")),
        "attribution": response.get("attribution", "integrated_gradients"),
        "target": target.get("label") if target.get("label") is not None else target.get("text"),
        "target_index": target["index"],
        "target_score": target["score"],
        "baseline_score": (response["baseline"] or {}).get("score"),  # saliency, attnlrp: no baseline
        "convergence_delta": response["convergence_delta"],
        "relative_delta": relative_delta(
            response["convergence_delta"], target["score"], (response["baseline"] or {}).get("score")
        ),
        "n_steps": response["n_steps"],
        "converged": response.get("converged"),
        "attributions": list(attributions["raw"]) if attributions else None,
        "tensors": tensors,
    }


def _continuation_columns(response: dict) -> dict:
    """A continuation's answer (integrated gradients, or a forward-only method's) as one row:
    each target token's score, and the whole continuation's attributions: per token (integrated
    gradients, in `attributions`), per source, sentence and message, and per unit left out
    (occlusion, contextcite), each a JSON list with the unit's text beside its id."""
    targets, whole = response["targets"], response.get("continuation_attributions")
    record = {
        "continuation": response["continuation"],
        "generated": response["generated"],
        "attribution": response["attribution"],
        "unit": response.get("unit"),
        "target_tokens": [t["text"] for t in targets],
        "target_scores": [t["score"] for t in targets],
    }
    if response["attribution"] in FORWARD_ATTRIBUTIONS:
        units = _with_texts(whole, response["units"])
        record["unit_attributions"] = units
        if response["unit"] in ("source", "sentence"):
            record[f"{response['unit']}_attributions"] = units
        return record
    score = sum(t["score"] for t in targets)
    baselines = [t["baseline_score"] for t in targets]
    baseline = None if None in baselines else sum(baselines)  # saliency, attnlrp: no baseline
    deltas = [t["convergence_delta"] for t in targets]
    delta = None if None in deltas else sum(deltas)  # saliency: no completeness
    record.update(
        {
            "target_score": score,
            "baseline_score": baseline,
            "convergence_delta": delta,
            "relative_delta": relative_delta(delta, score, baseline),
            "n_steps": response["n_steps"],
            "converged": response.get("converged"),
            "within_tolerance": response["within_tolerance"],
        }
    )
    if whole:
        record.update(
            {
                "attributions": list(whole["attributions"]["raw"]),
                "source_attributions": _with_texts(whole.get("sources"), response.get("sources")),
                "sentence_attributions": _with_texts(whole.get("sentences"), response.get("sentences")),
                "message_attributions": _json_text(whole.get("messages")),
            }
        )
    return record


def evaluation_columns(evaluation: dict | None) -> dict:
    """An answer's `evaluation` as columns: the row of a classifier's target, or of a
    continuation's whole answer (`target` null); nothing (all null) when it was not asked.

    >>> evaluation_columns({"unit": "word", "n_units": 3, "rows": [{"target": 0, "deletion_aopc": 0.5,
    ...     "insertion_aopc": 0.4, "comprehensiveness": 0.5, "sufficiency": 0.03, "random": None,
    ...     "win_rate": {"deletion": None, "insertion": None}}]})["deletion_aopc"]
    0.5
    """
    if not evaluation or not evaluation.get("rows"):
        return {}
    rows = evaluation["rows"]
    row = next((r for r in rows if r["target"] is None), rows[0])
    random = row.get("random") or {}
    return {
        "evaluation_unit": evaluation["unit"],
        "evaluation_n_units": evaluation["n_units"],
        **{name: row[name] for name in EVALUATION_NUMBERS},
        **{f"random_{name}": random[name]["mean"] if random else None for name in EVALUATION_NUMBERS},
        "win_rate_deletion": row["win_rate"]["deletion"],
        "win_rate_insertion": row["win_rate"]["insertion"],
    }


def _with_texts(values: list[dict] | None, units: list[dict] | None) -> str | None:
    """[{"id", "attribution"}] as JSON, with each unit's text (an id alone, "s3", says little)."""
    if values is None:
        return None
    texts = {u["id"]: u["text"] for u in units or ()}
    return _json_text([{"id": v["id"], "text": texts.get(v["id"]), "attribution": v["attribution"]} for v in values])


def reduce_heads(attention: np.ndarray, reduce: str) -> np.ndarray:
    """[L, H, T, T] → [L, T, T] by the mean or max over heads; `none` keeps it."""
    if reduce == "mean":
        return attention.mean(axis=1, dtype=np.float32)
    if reduce == "max":
        return attention.max(axis=1)
    if reduce == "none":
        return attention
    raise ValueError(f"reduce must be one of {REDUCES}, got {reduce!r}")


def attention_record(row: Row, response: dict, attention: np.ndarray, reduce: str, tensors: str | None = None) -> dict:
    """An answered attention row; `attention` is the response's [L, H, T, T] array."""
    tokens = response["tokens"]
    prediction = response.get("prediction")
    if prediction is None and tokens and tokens[-1].get("predictions"):  # a causal LM: what comes next
        prediction = {"next_tokens": tokens[-1]["predictions"]}
    if prediction is not None and "label" not in prediction and response["model"].get("predictions") != "next-token":
        prediction = None  # a masked LM's per-token predictions are not a prediction about the input
    block = response["attention"]
    return {
        **_input_columns(row),
        **_prediction_columns(prediction),
        **_token_columns(response),
        "layers": list(block["layers"]),
        "heads": list(block["heads"]),
        "reduce": reduce,
        "attention": nested_array(
            np.asarray(reduce_heads(np.asarray(attention, dtype=np.float32), reduce), dtype=np.float32)
        ),
        "tensors": tensors,
    }


def error_record(row: Row, field: str | None, message: str, code: int | None = 400) -> dict:
    """A refused row: its input columns and the error; every result column null."""
    return {**_input_columns(row), "error": message, "error_field": field, "error_code": code}


def nested_array(values: np.ndarray) -> pa.Array:
    """One row's nested lists (list<list<…float32>>) from an n-d array, built from offsets
    (no Python lists: a 512-token [6, 512, 512] selection is 1.5 M values)."""
    flat = np.ascontiguousarray(values, dtype=np.float32).ravel()
    array: pa.Array = pa.array(flat, type=pa.float32())
    shape = values.shape
    for k in range(len(shape) - 1, 0, -1):  # innermost level first
        count = int(np.prod(shape[:k]))
        offsets = pa.array(np.arange(count + 1, dtype=np.int32) * shape[k], type=pa.int32())
        array = pa.ListArray.from_arrays(offsets, array)
    return pa.ListArray.from_arrays(pa.array([0, shape[0]], type=pa.int32()), array)


def records_table(records: list[dict], schema: pa.Schema) -> pa.Table:
    """Records → a table of `schema` (missing keys are null; pyarrow arrays are concatenated)."""
    columns = []
    for f in schema:
        values = [r.get(f.name) for r in records]
        if any(isinstance(v, pa.Array) for v in values):
            columns.append(pa.concat_arrays([v if isinstance(v, pa.Array) else pa.nulls(1, f.type) for v in values]))
        else:
            columns.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(columns, schema=schema)


# --- output: shards, tensors, resume -------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """`path` complete or absent: a hidden temporary file beside it, fsynced, then renamed."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def tensors_name(row: int) -> str:
    """The file of a row's full tensors, relative to the output directory."""
    return f"{TENSORS_DIR}/{row:08d}.npz"


@dataclass
class Output:
    """The output directory of one run: locked for the run, temporary leftovers of a killed run
    removed, the rows already written read back, new shards numbered after the existing ones."""

    directory: Path
    schema: pa.Schema
    done: set[int] = field(default_factory=set)
    shards: list[Path] = field(default_factory=list)
    _lock: Any = None

    @classmethod
    def open(cls, directory: str | Path, schema: pa.Schema, tensors: bool = False) -> "Output":
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise DatasetError(f"{directory}: exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        out = cls(directory, schema)
        out._lock = open(directory / ".lock", "w")
        try:
            fcntl.flock(out._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            out._lock.close()
            raise DatasetError(f"{directory}: another run is writing to it") from None
        for leftover in [*directory.glob(".*.tmp"), *(directory / TENSORS_DIR).glob(".*.tmp")]:
            leftover.unlink()  # a run killed mid-write; its shard never existed
        if tensors:
            (directory / TENSORS_DIR).mkdir(exist_ok=True)
        out.shards = existing_shards(directory)
        want = (schema.metadata or {}).get(METADATA_KEY)
        for shard in out.shards:
            have = (pq.read_schema(shard).metadata or {}).get(METADATA_KEY)
            # by meaning, not bytes: a setting added since (a column option left unset) is the same run
            differences = _differences(have, want) if want is not None and have != want else ""
            if differences:
                raise DatasetError(
                    f"{directory} holds results of other settings ({shard.name}): {differences}; "
                    "give another --out (or rerun with the same settings to resume)"
                )
            out.done.update(pq.read_table(shard, columns=["row"]).column("row").to_pylist())
        return out

    def close(self) -> None:
        if self._lock is not None:
            (self.directory / ".lock").unlink(missing_ok=True)  # still holding it
            self._lock.close()
            self._lock = None


def _differences(there: bytes | None, here: bytes) -> str:
    """What differs between two runs' settings, as `key: there → here`."""
    if not there:
        return "not written by exformer explain"

    def flat(value, prefix=""):
        if isinstance(value, dict):
            return {k: v for key, item in value.items() for k, v in flat(item, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): value}

    a, b = flat(orjson.loads(there)), flat(orjson.loads(here))
    return ", ".join(
        f"{key} {orjson.dumps(a.get(key)).decode()} there, {orjson.dumps(b.get(key)).decode()} here"
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    )


def existing_shards(directory: Path) -> list[Path]:
    return sorted((p for p in directory.iterdir() if SHARD_PATTERN.match(p.name)), key=_shard_number)


def _shard_number(shard: Path) -> int:
    match = SHARD_PATTERN.match(shard.name)
    assert match is not None, f"not a shard: {shard}"
    return int(match.group(1))


class ShardWriter:
    """Buffers records and writes them as one shard every `shard_rows` rows or `flush_seconds`
    (so a killed run loses at most that much), and at close; each shard's rows sorted by row."""

    def __init__(
        self, output: Output, shard_rows: int = 1000, flush_seconds: float = 60.0, shard_bytes: int = 64 << 20
    ):
        self.output, self.shard_rows, self.flush_seconds = output, shard_rows, flush_seconds
        self.shard_bytes, self._bytes = shard_bytes, 0
        shards = output.shards
        self.next_index = _shard_number(shards[-1]) + 1 if shards else 0
        self.buffer: list[dict] = []
        self.written: list[Path] = []
        self.rows_written = 0
        self._since = time.monotonic()

    def add(self, record: dict) -> Path | None:
        self.buffer.append(record)
        self._bytes += _record_bytes(record)
        if (
            len(self.buffer) >= self.shard_rows
            or self._bytes >= self.shard_bytes
            or time.monotonic() - self._since >= self.flush_seconds
        ):
            return self.flush()
        return None

    def flush(self) -> Path | None:
        self._since = time.monotonic()
        if not self.buffer:
            return None
        records = sorted(self.buffer, key=lambda r: r["row"])
        table = records_table(records, self.output.schema)
        path = self.output.directory / f"part-{self.next_index:05d}.parquet"
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        write_atomic(path, sink.getvalue())
        self.next_index += 1
        self.buffer, self._bytes = [], 0
        self.written.append(path)
        self.rows_written += len(records)
        self.output.done.update(r["row"] for r in records)
        return path


def _record_bytes(record: dict) -> int:
    """Roughly what a buffered record holds (attention matrices dominate when present)."""
    size = 200 + sum(len(record.get(name) or "") for name in ("text", "text_pair", "messages", "sources"))
    size += 120 * len(record.get("tokens") or ())
    attention = record.get("attention")
    return size + (attention.nbytes if isinstance(attention, pa.Array) else 0)


class Stats:
    """Counts, the relative convergence deltas and the faithfulness win rates of one run
    (compact: 8 bytes a row each)."""

    def __init__(self):
        self.ok = self.refused = self.lost = 0
        self.deltas = array("d")
        self.wins = {"deletion": array("d"), "insertion": array("d")}
        self.first_error: str | None = None

    def add(self, record: dict) -> None:
        if record.get("error") is not None:
            self.refused += 1
        else:
            self.ok += 1
            delta = record.get("relative_delta")
            if delta is not None:
                self.deltas.append(delta)
            for curve, values in self.wins.items():
                if record.get(f"win_rate_{curve}") is not None:
                    values.append(record[f"win_rate_{curve}"])

    def win_rates(self) -> dict[str, float] | None:
        """The mean win rate against random orders of each curve over the rows evaluated; None if none was."""
        if not self.wins["deletion"]:
            return None
        return {curve: float(np.frombuffer(values, dtype=np.float64).mean()) for curve, values in self.wins.items()}

    def delta_summary(self) -> tuple[float, float] | None:
        if not self.deltas:
            return None
        values = np.frombuffer(self.deltas, dtype=np.float64)
        return float(np.median(values)), float(values.max())
