"""Scale-down under load, counted: trials of 1 → 2 → 1 workers while clients stream
attention requests, for several batch settings, without resending. What each request got:
200, a 500 (TorchServe's "Worker died."), or nothing within the client timeout (lost). Starts its
own TorchServe on 127.0.0.1:18080-18082; bounded by --trials.

    .venv/bin/python bench/scaling.py [--trials 20]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/support: a TorchServe on loopback
sys.path.insert(0, str(ROOT / "bench"))
from configs import archive_variant  # noqa: E402
from support import torchserve as ts  # noqa: E402
from support.torchserve import Stream, scale  # noqa: E402
from table import header  # noqa: E402

BODY = {"text": "Scaling must not drop a single request.", "layers": [0], "heads": [0]}


def scale_down(server, name) -> bool:
    """Scale to 1; False if TorchServe refused the first PUT (then it is sent again)."""
    for attempt in range(5):
        try:
            scale(server, name, 1)
            return attempt == 0
        except AssertionError as error:  # e.g. 500 ConcurrentModificationException
            print(f"# PUT min_worker=1 failed: {str(error)[:120]!r}", file=sys.stderr)
            time.sleep(1)
    raise RuntimeError(f"{name}: could not scale down to 1 worker")


BATCHES = {"batchSize 1 (default)": (1, 20), "batchSize 4, 20 ms": (4, 20)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20, help="1 → 2 → 1 cycles per batch setting")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=20, help="s a client waits before calling a request lost")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    archives = {}
    for i, (batch, delay) in enumerate(BATCHES.values()):
        archives[f"b{i}-attention"] = archive_variant(
            work,
            f"b{i}-attention",
            "attention",
            "build/models/minilm",
            {"maxWorkers": 2, "batchSize": batch, "maxBatchDelay": delay, "responseTimeout": 60},
        )
    print(
        f"# {args.trials} trials of 1 → 2 → 1 workers each, {args.clients} clients streaming "
        f"minilm attention, no resending; lost = no answer within {args.timeout:.0f} s"
    )
    header(
        "model-config",
        "trials",
        "requests",
        "trials with a failure",
        "answered 500",
        "lost",
        "other",
        "scale-down PUT refused",
        text_columns=1,
    )
    with ts.serving(work / "server", archives) as server:
        for (label, _), name in zip(BATCHES.items(), archives):
            requests = failed_trials = died = lost = other = refused = 0
            for _ in range(args.trials):
                with Stream(server, name, BODY, clients=args.clients, resend=False, timeout=args.timeout) as stream:
                    time.sleep(0.5)
                    scale(server, name, 2)
                    time.sleep(0.5)
                    refused += not scale_down(server, name)
                    time.sleep(0.3)
                statuses = [s for _, s, _ in stream.answers]
                requests += len(statuses)
                failed_trials += any(s != 200 for s in statuses)
                died += sum(s == 500 for s in statuses)
                lost += sum(isinstance(s, str) for s in statuses)
                other += sum(isinstance(s, int) and s not in (200, 500) for s in statuses)
            print(
                f"| {label} | {args.trials} | {requests} | {failed_trials} | {died} | {lost} | {other} | {refused} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
