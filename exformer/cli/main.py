"""The `exformer` command line.

    exformer explain sentiment-gradients reviews.csv --text-column review --out results/
    exformer explain sentiment-attention reviews.jsonl --out att/ --layers 0,5 --reduce mean
    exformer explain sentiment-gradients reviews.csv --out results/ --local build/models/sentiment
    exformer explain smollm2-gradients rag.jsonl --messages-column messages --sources-column sources \
        --continuation-column answer --attribution occlusion --out rag/
    exformer explain sentiment-gradients reviews.csv --attribution saliency --evaluate-unit word --out faithful/

`explain` streams a CSV/TSV/JSONL/Parquet file through a served model (TorchServe, many
requests in flight) or a model loaded in this process (`--local`), and writes one output row
per input row to a directory of Parquet shards; Ctrl-C stops cleanly and the same command
resumes. The readers, records and shards are in `exformer.cli.dataset`.
"""

import asyncio
import shlex
import signal
import sys
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args

import orjson
import typer

from ..contract.vocabulary import (
    BASELINES,
    FIXED_METHODS,
    FORWARD_ATTRIBUTIONS,
    GRADIENT_ATTRIBUTIONS,
    NESTED_METHODS,
    SCORES,
    Ablation,
    Aggregate,
    Attribution,
    Unit,
)
from . import dataset
from .dataset import Columns, DatasetError, Row

if TYPE_CHECKING:  # the base install has no torch: a local model is loaded on demand
    from ..core.loading import LoadedModel

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Attention and gradient explanations for Hugging Face transformers.",
)

KINDS = ("gradients", "attention")
LOG_EVERY = 10.0  # s between progress lines when stderr is not a terminal


class Reduce(str, Enum):
    mean = "mean"
    max = "max"
    none = "none"


class Kind(str, Enum):
    gradients = "gradients"
    attention = "attention"


class Protocol(str, Enum):
    torchserve = "torchserve"
    kserve_v1 = "kserve-v1"


class Encoding(str, Enum):
    json = "json"
    float16 = "float16-base64"


@app.callback()
def _root() -> None:
    """Attention and gradient explanations for Hugging Face transformers."""


def _indices(value: str | None, name: str) -> str | list[int]:
    if value is None or value.strip() == "all":
        return "all"
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(
            f'"all" or comma-separated indices (e.g. 0,5), got {value!r}', param_hint=name
        ) from None


def _n_steps(value: str | None) -> int | str | None:
    """--n-steps: a number of path points, or "auto" (the server checks the range)."""
    if value is None or value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise typer.BadParameter(f'a number of path points or "auto", got {value!r}') from None


def _evaluate(on: bool, **given) -> dict | None:
    """The request's `evaluate` block: the options given (the server checks their ranges and
    fills in its defaults); None unless --evaluate or one of them was given."""
    fields = {k: v for k, v in given.items() if v is not None}
    return fields if on or fields else None


def _kind_of(model: str, given: Kind | None) -> str:
    if given is not None:
        return given.value
    for kind in KINDS:
        if model.endswith(f"-{kind}"):
            return kind
    raise typer.BadParameter(
        f"cannot tell whether {model!r} is a gradients or an attention model from its "
        "name (archive.sh names end in -gradients / -attention); give --kind",
        param_hint="MODEL",
    )


# --- explainers: a row in, a record out (or ServerError: not written, retried on a rerun) -------


class Served:
    """Rows through TorchServe with exformer.AsyncClient."""

    def __init__(self, client, model: str, kind: str, options: dict, reduce: str, tensors: bool, out: Path):
        self.client, self.model, self.kind, self.options = client, model, kind, options
        self.reduce, self.tensors, self.out = reduce, tensors, out

    async def __call__(self, row: Row) -> dict:
        from ..contract.errors import RequestError

        if row.problem:
            return dataset.error_record(row, "input", row.problem, None)
        try:
            if self.kind == "gradients":
                # the body as the row makes it: a conversation has no text, and "format" goes only
                # with --tensors (forward-only attributions refuse it)
                body = {**_row_body(row, self.options), **({"format": "npz"} if self.tensors else {})}
                result = await self.client.explain(self.model, body)
                name = await self._save(row, _gradients_npz, result) if self.tensors else None
                return dataset.gradients_record(row, result, name)
            result = await self.client.attention(self.model, row.text, **_row_fields(row, self.options))
            attention = result.attention
            name = await self._save(row, _attention_npz, result, attention) if self.tensors else None
            return dataset.attention_record(row, result, attention, self.reduce, name)
        except RequestError as error:
            return dataset.error_record(row, error.field, error.message, error.code)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _save(self, row: Row, encode: Callable, *args) -> str:
        name = dataset.tensors_name(row.number)
        await asyncio.to_thread(lambda: dataset.write_atomic(self.out / name, encode(*args)))
        return name


class Local:
    """Rows through a model loaded in this process (the handlers' core; no TorchServe)."""

    def __init__(self, loaded: "LoadedModel", kind: str, options: dict, reduce: str, tensors: bool, out: Path):
        self.loaded, self.kind, self.options = loaded, kind, options
        self.reduce, self.tensors, self.out = reduce, tensors, out

    async def __call__(self, row: Row) -> dict:
        return self.explain(row)  # computes in the loop's thread: one row at a time

    def explain(self, row: Row) -> dict:
        from ..contract.errors import RequestError

        if row.problem:
            return dataset.error_record(row, "input", row.problem, None)
        body = _row_body(row, self.options)
        try:
            return self._gradients(row, body) if self.kind == "gradients" else self._attention(row, body)
        except RequestError as error:
            return dataset.error_record(row, error.field, error.message, error.code)

    def _gradients(self, row: Row, body: dict) -> dict:
        from ..contract.requests import GradientsRequest
        from ..explain.checks import parse_request
        from ..explain.dispatch import explain_batch

        request = parse_request(self.loaded, GradientsRequest, {**body, **({"format": "npz"} if self.tensors else {})})
        if not isinstance(request, GradientsRequest):
            raise request
        (result,) = explain_batch(self.loaded, [request])
        if isinstance(result, Exception):
            raise result
        if isinstance(result, dict):  # a forward-only method's answer: no tensors (--tensors is refused)
            return dataset.gradients_record(row, result)
        name = None
        if self.tensors:  # the server's npz, byte for byte what the handler would send
            name = dataset.tensors_name(row.number)
            dataset.write_atomic(self.out / name, result.body("npz")[0])
        summary = result.to_json() if request.format == "json" else result.summary
        return dataset.gradients_record(row, summary, name)

    def _attention(self, row: Row, body: dict) -> dict:
        import numpy as np

        from ..client.results import AttentionResult
        from ..explain.api import explain_attention

        response = explain_attention(self.loaded, body)
        assert isinstance(response, AttentionResult)  # one body, one answer
        attention = np.asarray(response["attention"]["data"], dtype=np.float32)
        name = None
        if self.tensors:
            name = dataset.tensors_name(row.number)
            dataset.write_atomic(self.out / name, _attention_npz(response, attention))
        return dataset.attention_record(row, response, attention, self.reduce, name)


def _row_fields(row: Row, options: dict) -> dict:
    fields = dict(options)
    if row.pair is not None:
        fields["text_pair"] = row.pair
    if row.target is not None:
        fields["target"] = row.target
    if row.messages is not None:
        fields["messages"] = row.messages
    if row.sources is not None:
        fields["sources"] = row.sources
    if row.continuation is not None:  # the row's own continuation; --max-new-tokens generates the others
        fields.pop("generate", None)
        fields["continuation"] = row.continuation
    return fields


def _row_body(row: Row, options: dict) -> dict:
    """A gradients row's request: its text (none where its messages replace it) and fields."""
    return {**({} if row.text is None else {"text": row.text}), **_row_fields(row, options)}


def _npz(arrays: dict) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _gradients_npz(result) -> bytes:
    """The server's npz layout (integrated_gradients [1, T, E], the summary as JSON text), so
    that `exformer.GradientsResult.from_npz(path)` reads it back."""
    arrays = dict(result.tensors)
    if "integrated_gradients" in arrays:
        arrays["integrated_gradients"] = arrays["integrated_gradients"][None]
    arrays["summary"] = orjson.dumps(dict(result), option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return _npz(arrays)


def _attention_npz(response: dict, attention) -> bytes:
    """The full [L, H, T, T] selection (whatever --reduce keeps in the table) and the response
    without its array, as JSON text."""
    summary = {k: v for k, v in response.items() if k != "attention"}
    block = response["attention"]
    summary["attention"] = {"layers": block["layers"], "heads": block["heads"], "shape": list(attention.shape)}
    return _npz({"attention": attention, "summary": orjson.dumps(summary, option=orjson.OPT_SERIALIZE_NUMPY).decode()})


# --- progress -------------------------------------------------------------------------------------


class Progress:
    """rows done/total, rows/s, ETA and errors so far: a rich bar on a terminal, a line every
    LOG_EVERY s otherwise (logs, CI)."""

    def __init__(self, total: int, already: int, label: str, enabled: bool = True):
        from rich.console import Console

        self.console = Console(stderr=True, soft_wrap=True)
        self.total, self.already, self.label = total, already, label
        self.done = self.errors = 0
        self.started = self._logged = time.monotonic()
        self.bar = None
        if enabled and self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                ProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar
            from rich.text import Text

            class Rate(ProgressColumn):
                def render(self, task):
                    return Text(f"{task.speed:.2f} rows/s" if task.speed else "… rows/s")

            self.bar = Bar(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                Rate(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[errors]} errors"),
                console=self.console,
                transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task(label, total=total or None, completed=already, errors=0)
        self.enabled = enabled

    def advance(self, error: bool) -> None:
        self.done += 1
        self.errors += error
        if self.bar is not None:
            self.bar.update(self.task, advance=1, errors=self.errors)
        elif self.enabled and time.monotonic() - self._logged >= LOG_EVERY:
            self._logged = time.monotonic()
            self.console.print(self.line(), highlight=False)

    def rate(self) -> float:
        seconds = time.monotonic() - self.started
        return self.done / seconds if seconds > 0 else 0.0

    def line(self) -> str:
        rate, left = self.rate(), max(0, self.total - self.already - self.done)
        eta = f"ETA {left / rate:.0f} s" if rate else "ETA ?"
        return (
            f"{self.label}: {self.already + self.done:,}/{self.total:,} rows, {rate:.2f} rows/s, {eta}, "
            f"{self.errors} errors"
        )

    def note(self, message: str) -> None:
        self.console.print(message, highlight=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


# --- the run ----------------------------------------------------------------------------------------


class Run:
    """Rows → explainer (up to `concurrency` at once) → shard writer; stops cleanly on SIGINT."""

    def __init__(
        self, rows, explain, writer: "dataset.ShardWriter", progress: Progress, concurrency: int, max_lost: int
    ):
        self.rows, self.explain, self.writer, self.progress = rows, explain, writer, progress
        self.concurrency, self.max_lost = concurrency, max_lost
        self.stats = dataset.Stats()
        self.interrupted = False
        self.fatal: str | None = None
        self._consecutive_lost = 0
        self._tasks: list[asyncio.Task] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def interrupt(self) -> None:
        """From the SIGINT handler: cancel what is in flight; answered rows are kept."""
        self.interrupted = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def main(self) -> None:
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(maxsize=2 * self.concurrency)
        self._tasks = [asyncio.create_task(self._produce(queue))]
        self._tasks += [asyncio.create_task(self._work(queue)) for _ in range(self.concurrency)]
        if self.interrupted:  # a Ctrl-C before the loop ran
            self._cancel()
        try:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
            self._cancel()
            await asyncio.wait(self._tasks)
        finally:
            close = getattr(self.explain, "aclose", None)
            if close is not None:
                await close()
        for task in self._tasks:
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error

    async def _produce(self, queue: asyncio.Queue) -> None:
        done = self.writer.output.done
        for batch in self.rows:
            for row in batch:
                if row.number not in done:
                    await queue.put(row)
            await asyncio.sleep(0)
        for _ in range(self.concurrency):
            await queue.put(None)

    async def _work(self, queue: asyncio.Queue) -> None:
        from ..contract.errors import ServerError

        while (row := await queue.get()) is not None:
            try:
                record = await self.explain(row)
            except ServerError as error:
                self._lost(row, error)
                continue
            self._consecutive_lost = 0
            self.stats.add(record)
            self.writer.add(record)
            self.progress.advance(record.get("error") is not None)

    def _lost(self, row: Row, error: Exception) -> None:
        self.stats.lost += 1
        self._consecutive_lost += 1
        self.progress.advance(True)
        if self.stats.first_error is None:
            self.stats.first_error = f"row {row.number}: {error}"
            self.progress.note(
                f"[yellow]row {row.number} not written (the server failed; a rerun retries it): {error}[/]"
            )
        if self._consecutive_lost >= self.max_lost and self.fatal is None:
            self.fatal = f"{self._consecutive_lost} rows in a row failed on the server side; last: {error}"
            self._cancel()


def _run(run: Run, writer: "dataset.ShardWriter") -> None:
    """The loop, with our SIGINT (and SIGTERM) handler: the first Ctrl-C cancels what is in flight (a local
    row being computed finishes first), a second one stops at once; either way the rows
    answered are flushed as one final shard."""

    def on_sigint(signum, frame):
        if run.interrupted:
            raise KeyboardInterrupt
        run.progress.note("[yellow]Ctrl-C: stopping, saving the rows answered so far (Ctrl-C again to stop at once)[/]")
        run.interrupt()

    stops = (signal.SIGINT, signal.SIGTERM)  # SIGTERM (a batch system, `timeout`) stops the same way
    previous = {s: signal.signal(s, on_sigint) for s in stops}
    try:
        asyncio.run(run.main())
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        for s in stops:
            signal.signal(s, signal.SIG_IGN)  # nothing interrupts the last flush
        try:
            run.progress.close()
            writer.flush()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _resume_command() -> str:
    return shlex.join(["exformer", *sys.argv[1:]])


def _summary(run: Run, output: "dataset.Output", model: str, out: Path, total: int, seconds: float) -> dict:
    stats = run.stats
    deltas = stats.delta_summary()
    wins = stats.win_rates()
    new = stats.ok + stats.refused
    return {
        "model": model,
        "out": str(out),
        "rows_total": total,
        "rows_in_out": len(output.done),
        "rows_ok": stats.ok,
        "rows_failed": stats.refused,
        "rows_not_written": stats.lost,
        "seconds": round(seconds, 3),
        "rows_per_s": round(new / seconds, 3) if seconds > 0 else None,
        "relative_delta_median": deltas[0] if deltas else None,
        "relative_delta_max": deltas[1] if deltas else None,
        "rows_evaluated": len(stats.wins["deletion"]),
        "win_rate_deletion_mean": wins["deletion"] if wins else None,
        "win_rate_insertion_mean": wins["insertion"] if wins else None,
        "shards_written": [p.name for p in run.writer.written],
        "interrupted": run.interrupted,
        "first_error": stats.first_error,
    }


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
        return
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    s = summary
    shards = s["shards_written"]
    console.print(
        f"{s['model']}: {s['rows_ok'] + s['rows_failed']:,} rows written to {s['out']} in "
        f"{len(shards)} shard{'s' * (len(shards) != 1)} ({s['rows_in_out']:,} of {s['rows_total']:,} "
        f"rows there now)"
    )
    rate = f"{s['rows_per_s']:.2f}" if s["rows_per_s"] is not None else "-"
    console.print(
        f"  ok {s['rows_ok']:,}, failed {s['rows_failed']:,} (written with their error)"
        + (
            f", not written {s['rows_not_written']:,} (server errors; a rerun retries them)"
            if s["rows_not_written"]
            else ""
        )
        + f"; {rate} rows/s over {s['seconds']:.1f} s"
    )
    if s["relative_delta_median"] is not None:
        console.print(
            f"  relative convergence delta |Σattr − (F(x) − F(x′))| / |F(x) − F(x′)|: "
            f"median {s['relative_delta_median']:.2e}, max {s['relative_delta_max']:.2e}"
        )
    if s["win_rate_deletion_mean"] is not None:
        console.print(
            f"  faithfulness over {s['rows_evaluated']:,} rows: mean win rate against random orders "
            f"deletion {s['win_rate_deletion_mean']:.2f}, insertion {s['win_rate_insertion_mean']:.2f}"
        )


@app.command()
def explain(
    model: Annotated[
        str,
        typer.Argument(
            help="Served model name (e.g. sentiment-gradients, minilm-attention); "
            "with --local, the name given to the loaded model."
        ),
    ],
    input: Annotated[
        Path,
        typer.Argument(
            help="CSV, TSV, JSONL or Parquet file (.gz/.bz2/.xz for the text formats).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output directory of Parquet shards (created; a rerun resumes into it).")
    ],
    text_column: Annotated[str, typer.Option(help="Column (JSONL: key) of the text.")] = "text",
    pair_column: Annotated[str | None, typer.Option(help="Column of a second segment (sentence pairs).")] = None,
    target_column: Annotated[
        str | None,
        typer.Option(
            help="Gradients: column of the target (label or class index; causal LMs: next token). "
            "Empty: the model's prediction."
        ),
    ] = None,
    id_column: Annotated[str | None, typer.Option(help="Column copied to the output's `id` (as text).")] = None,
    messages_column: Annotated[
        str | None,
        typer.Option(
            help='Gradients, chat models: column of the conversation, a JSON array of {"role", "content"} (JSONL, '
            "Parquet: or the array itself); it replaces the text (whose column is then optional). Needs a "
            "continuation (--continuation-column) or --max-new-tokens."
        ),
    ] = None,
    sources_column: Annotated[
        str | None,
        typer.Option(
            help="Gradients, causal LMs: column of the named spans of the prompt (e.g. RAG documents), a JSON array of "
            '{"id", "message", "start", "end"} or {"id", "text"}; answers sum per source.'
        ),
    ] = None,
    continuation_column: Annotated[
        str | None,
        typer.Option(
            help="Gradients, causal LMs: column of the text that follows the prompt (an answer); each of its "
            "tokens is a target. Empty: generated with --max-new-tokens."
        ),
    ] = None,
    format: Annotated[str | None, typer.Option(help="csv, tsv, jsonl or parquet (default: from the name).")] = None,
    kind: Annotated[Kind | None, typer.Option(help="Default: from the model name's -gradients/-attention.")] = None,
    n_steps: Annotated[
        str | None,
        typer.Option(
            callback=lambda value: _n_steps(value),
            help='Gradients: path points (server default 50), or "auto": as many as --tolerance needs.',
        ),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            help="Gradients with --n-steps auto: the relative convergence delta to reach (server default 0.01)."
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(help=f"Gradients: {', '.join(BASELINES)} (server default pad; zero without a pad token)."),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            help=f"Gradients: {', '.join(FIXED_METHODS)} (default {FIXED_METHODS[0]}); with --n-steps auto: "
            f"{' or '.join(NESTED_METHODS)} (default {NESTED_METHODS[0]})."
        ),
    ] = None,
    score: Annotated[
        str | None, typer.Option(help=f"Gradients: the F attributed: {', '.join(SCORES)} (default {SCORES[0]}).")
    ] = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Gradients, causal LMs: generate each row's continuation greedily, at most this many tokens "
            "(rows without one in --continuation-column).",
        ),
    ] = None,
    attribution: Annotated[
        str | None,
        typer.Option(
            help=f"Gradients: {', '.join(get_args(Attribution))} (default {get_args(Attribution)[0]}); "
            f"{', '.join(GRADIENT_ATTRIBUTIONS)} for any target, the forward-only ones (continuations only) leave "
            "out one --unit at a time (occlusion) or at random (contextcite)."
        ),
    ] = None,
    unit: Annotated[
        str | None,
        typer.Option(
            help=f"occlusion/contextcite: what is left out: {', '.join(get_args(Unit))} (default source with "
            "--sources-column, else sentence)."
        ),
    ] = None,
    ablation: Annotated[
        str | None,
        typer.Option(
            help=f"occlusion/contextcite: {', '.join(get_args(Ablation))} (default {get_args(Ablation)[0]}): "
            "the unit's text taken out, or its tokens replaced by the baseline token."
        ),
    ] = None,
    n_ablations: Annotated[int | None, typer.Option(help="contextcite: random masks the surrogate is fit on.")] = None,
    keep_probability: Annotated[
        float | None, typer.Option(help="contextcite: the chance that a unit is kept in a mask.")
    ] = None,
    n_holdout: Annotated[
        int | None, typer.Option(help="contextcite: masks the surrogate's fit is measured on.")
    ] = None,
    evaluate: Annotated[
        bool,
        typer.Option(
            "--evaluate",
            help="Gradients: also measure each row's faithfulness (the request's evaluate): deletion and "
            "insertion AOPC, comprehensiveness, sufficiency, their means over random orders and the "
            "win rates, as columns (a continuation: its whole answer's). Any --evaluate-* implies it.",
        ),
    ] = False,
    evaluate_unit: Annotated[
        str | None,
        typer.Option(
            help=f"--evaluate: what is removed: {', '.join(get_args(Unit))} (default: the method's own unit; tokens "
            "for a gradient method)."
        ),
    ] = None,
    evaluate_steps: Annotated[
        int | None, typer.Option(help="--evaluate: points of each curve after the first (server default 10).")
    ] = None,
    evaluate_random_orders: Annotated[
        int | None,
        typer.Option(help="--evaluate: random orders compared with (server default 10; 0: none, and no win rates)."),
    ] = None,
    evaluate_seed: Annotated[int | None, typer.Option(help="--evaluate: the random orders' seed (default 0).")] = None,
    evaluate_top_fraction: Annotated[
        float | None,
        typer.Option(
            help="--evaluate: the share of units ERASER's comprehensiveness removes and sufficiency keeps "
            "(server default 0.2)."
        ),
    ] = None,
    aggregate: Annotated[
        str | None,
        typer.Option(
            help=f"Gradients: {', '.join(get_args(Aggregate))}: also sum integrated gradients per word or (with a "
            "continuation) per sentence."
        ),
    ] = None,
    layers: Annotated[str | None, typer.Option(help='Attention: "all" or indices, e.g. 0,5.')] = None,
    heads: Annotated[str | None, typer.Option(help='Attention: "all" or indices.')] = None,
    reduce: Annotated[
        Reduce, typer.Option(help="Attention: over heads, stored as per-layer [T, T] lists; none: [L, H, T, T].")
    ] = Reduce.mean,
    encoding: Annotated[
        Encoding,
        typer.Option(help="Attention on the wire: json (exact) or float16-base64 (4.4-4.9x smaller, 3 digits)."),
    ] = Encoding.json,
    url: Annotated[
        str, typer.Option(envvar="EXFORMER_URL", help="TorchServe's inference API.")
    ] = "http://127.0.0.1:8080",
    protocol: Annotated[
        Protocol,
        typer.Option(
            help="torchserve: TorchServe's inference API; kserve-v1: an InferenceService on exformer's KServe "
            "runtime (JSON only; no management API there, so concurrency is --concurrency, default 2)."
        ),
    ] = Protocol.torchserve,
    management_url: Annotated[str | None, typer.Option(help="Default: the inference port + 1.")] = None,
    token: Annotated[str | None, typer.Option(envvar="EXFORMER_TOKEN", help="Inference key (Bearer).")] = None,
    management_token: Annotated[
        str | None, typer.Option(envvar="EXFORMER_MANAGEMENT_TOKEN", help="Management key (Bearer).")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Requests in flight (default: 2 × the model's workers; 1 with --local).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 600.0,
    tensors: Annotated[
        bool, typer.Option("--tensors", help="Also write each row's full tensors (_tensors/<row>.npz).")
    ] = False,
    local: Annotated[
        Path | None,
        typer.Option(help="Run in this process on this model directory (no TorchServe).", file_okay=False, exists=True),
    ] = None,
    shard_rows: Annotated[int, typer.Option(min=1, help="Rows per shard (also written every minute).")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="The summary as one JSON line on stdout.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress on stderr.")] = True,
) -> None:
    """Explain every row of a dataset: one output row per input row, in Parquet shards.

    A row the model refuses (a 4xx: empty text, unknown label…) is written with its error and
    the run goes on. Ctrl-C stops cleanly; the same command resumes, skipping the rows already
    written.
    """
    kind_name = _kind_of(model, kind)
    columns = Columns(
        text=text_column,
        pair=pair_column,
        target=target_column,
        id=id_column,
        messages=messages_column,
        sources=sources_column,
        continuation=continuation_column,
    )
    gradient_options = {
        "n_steps": n_steps,
        "tolerance": tolerance,
        "baseline": baseline,
        "method": method,
        "score": score,
        "attribution": attribution,
        "unit": unit,
        "ablation": ablation,
        "n_ablations": n_ablations,
        "keep_probability": keep_probability,
        "n_holdout": n_holdout,
        "aggregate": aggregate,
        "generate": None if max_new_tokens is None else {"max_new_tokens": max_new_tokens},
        "evaluate": _evaluate(
            evaluate,
            unit=evaluate_unit,
            steps=evaluate_steps,
            random_orders=evaluate_random_orders,
            seed=evaluate_seed,
            top_fraction=evaluate_top_fraction,
        ),
    }
    attention_given = {"--layers": layers, "--heads": heads}
    options: dict[str, Any]  # the request's fields
    if kind_name == "gradients":
        wrong = [name for name, value in attention_given.items() if value is not None]
        if reduce != Reduce.mean:
            wrong.append("--reduce")
        options = {k: v for k, v in gradient_options.items() if v is not None}
        reduce_name = None
    else:
        wrong = [f"--{k.replace('_', '-')}" for k, v in gradient_options.items() if v is not None]
        wrong = ["--max-new-tokens" if w == "--generate" else w for w in wrong]
        wrong += [f"--{k}-column" for k in ("target", "messages", "sources", "continuation") if getattr(columns, k)]
        options = {
            "layers": _indices(layers, "--layers"),
            "heads": _indices(heads, "--heads"),
            "encoding": encoding.value,
        }
        reduce_name = reduce.value
    if wrong:
        raise typer.BadParameter(f"{', '.join(wrong)}: not for a {kind_name} model", param_hint="options")
    if tensors and attribution in FORWARD_ATTRIBUTIONS:
        raise typer.BadParameter(
            f"{attribution} answers one value per unit: no tensors (integrated gradients only)", param_hint="--tensors"
        )
    if tensors and Protocol(protocol) is Protocol.kserve_v1 and not local:
        raise typer.BadParameter(
            "KServe's v1 protocol answers JSON: the full tensors come from TorchServe's "
            "/predictions (--protocol torchserve)",
            param_hint="--tensors",
        )

    console_err = _err_console()
    try:
        fmt = dataset.detect_format(input, format)
        # What the rows depend on; a rerun into the same --out must match it (exact json
        # attention and --local compute the same values, so neither is part of it).
        settings = {
            "version": 1,
            "model": model,
            "kind": kind_name,
            "input": input.name,
            "columns": vars(columns),
            "reduce": reduce_name,
            "request": {k: v for k, v in options.items() if k != "encoding" or v != "json"},
        }
        schema = dataset.schema(
            kind_name,
            reduce_name or "mean",
            settings,
            continuations=columns.continuations() or max_new_tokens is not None,
        )
        output = dataset.Output.open(out, schema, tensors=tensors)
    except DatasetError as error:
        console_err.print(f"[red]error:[/] {error}", highlight=False)
        raise typer.Exit(2) from None

    try:
        total = dataset.count_rows(input, fmt)
        rows = dataset.read_rows(input, columns, fmt)
        first = next(rows, None)  # column errors before any request
        rows = _chain(first, rows)
        left = max(0, total - len(output.done))
        if output.done:
            console_err.print(
                f"{out}: {len(output.done):,} rows already written"
                + ("; resuming" if left else "; nothing left to explain"),
                highlight=False,
            )
        if local is not None:
            explainer, label, workers_note = _local(
                local, model, kind_name, options, reduce_name, tensors, out, console_err, left
            )
            concurrency = 1 if concurrency is None else concurrency
        else:
            client, served = _client(
                url, management_url, token, management_token, timeout, model, console_err, Protocol(protocol).value
            )
            if concurrency is None:
                workers = served.workers if served else 0
                concurrency = 2 * workers if workers else 2
                workers_note = f"concurrency {concurrency}" + (f" (2 × {workers} workers)" if workers else "")
            else:
                workers_note = f"concurrency {concurrency}"
            explainer = Served(client, model, kind_name, options, reduce_name or "mean", tensors, out)
            label = model
        if left:
            console_err.print(f"{label}: {left:,} of {total:,} rows to explain, {workers_note}", highlight=False)
        writer = dataset.ShardWriter(output, shard_rows=shard_rows)
        bar = Progress(total, min(len(output.done), total), label, enabled=progress)
        run = Run(rows, explainer, writer, bar, concurrency, max_lost=max(5, concurrency))
        started = time.monotonic()
        _run(run, writer)
        seconds = time.monotonic() - started
    except DatasetError as error:
        console_err.print(f"[red]error:[/] {error}", highlight=False)
        raise typer.Exit(2) from None
    finally:
        output.close()

    summary = _summary(run, output, model, out, max(total, len(output.done)), seconds)
    _print_summary(summary, as_json)
    if run.interrupted:
        console_err.print(
            f"[yellow]Interrupted.[/] {len(output.done):,} of {summary['rows_total']:,} rows are in "
            f"{out}; resume with the same command:\n  {_resume_command()}",
            highlight=False,
        )
        raise typer.Exit(130)
    if run.fatal:
        console_err.print(
            f"[red]Stopped:[/] {run.fatal}\nRows answered are saved; rerun the same command "
            f"to resume:\n  {_resume_command()}",
            highlight=False,
        )
        raise typer.Exit(1)
    if run.stats.lost:
        console_err.print(
            f"[yellow]{run.stats.lost} rows not written[/] (server errors; first: "
            f"{run.stats.first_error}); rerun the same command to retry them",
            highlight=False,
        )
        raise typer.Exit(1)


def _err_console():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def _chain(first, rest):
    if first is not None:
        yield first
        yield from rest


def _local(
    model_dir: Path,
    model: str,
    kind: str,
    options: dict,
    reduce: str | None,
    tensors: bool,
    out: Path,
    console,
    left: int,
):
    from transformers.utils import logging as hf_logging

    from ..core.loading import load_model

    hf_logging.disable_progress_bar()  # "Loading weights": our own progress follows
    if left:
        console.print(f"loading {model_dir} …", highlight=False)
    loaded = load_model(model_dir, name=model)
    if kind == "gradients" and loaded.head not in ("sequence-classification", "causal-lm"):
        raise typer.BadParameter(
            f"{model_dir} has no classification or causal-LM head: no gradients to explain (use --kind attention)",
            param_hint="--local",
        )
    local_options = {k: v for k, v in options.items() if k != "encoding"}  # nothing goes over a wire
    return (
        Local(loaded, kind, local_options, reduce or "mean", tensors, out),
        f"{model} (local)",
        f"in this process, {_threads()} threads",
    )


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _client(url, management_url, token, management_token, timeout, model, console, protocol="torchserve"):
    """The AsyncClient, and the model as the management API describes it (None if it cannot be
    asked: then the concurrency defaults to 2)."""
    from ..client.http import AsyncClient
    from ..contract.errors import RequestError, ServerError

    async def ask():
        client = AsyncClient(
            url, token=token, management_url=management_url, management_token=management_token, timeout=timeout
        )
        try:
            return await client.models()
        finally:
            await client.aclose()

    served = None
    try:
        if protocol != "torchserve":
            raise ValueError("a KServe InferenceService has no management API")
        models = asyncio.run(ask())
    except (ServerError, RequestError, ValueError) as error:
        console.print(
            f"[yellow]cannot list the served models ({error}); concurrency 2 unless --concurrency[/]", highlight=False
        )
    else:
        served = next((m for m in models if m.name == model), None)
        if served is None:
            names = ", ".join(m.name for m in models) or "none"
            console.print(f"[red]error:[/] {url} serves no model {model!r}; it serves: {names}", highlight=False)
            raise typer.Exit(2)
    client = AsyncClient(
        url,
        token=token,
        management_url=management_url,
        management_token=management_token,
        timeout=timeout,
        protocol=protocol,
    )
    return client, served


def main() -> None:
    """The console script `exformer`."""
    app()


if __name__ == "__main__":
    main()
