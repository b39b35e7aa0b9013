"""Memory per TorchServe worker with 1, 2 and 4 workers of one model: are the weights shared?

Workers load the archive's safetensors memory-mapped and never write them, so their pages
are the page cache's, shared by every worker; what a worker adds is its own interpreter,
libraries and activations. With the fork server (exformer/serving/forkserver.py, the default) the
workers are forked from one process that has imported torch and transformers, and share those
pages too; the totals then count the fork server and each worker's launcher (the process
TorchServe started). `--forkserver both` (the default) measures with and without it, one
after the other. Starts its own TorchServe on 127.0.0.1:18080-18082
(+ EXFORMER_TEST_PORT_OFFSET).

    .venv/bin/python bench/memory.py [--model sentiment-gradients] [--forkserver on|off|both]
"""

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from safetensors import safe_open

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/support: a TorchServe on loopback
from support import torchserve as ts  # noqa: E402
from table import header  # noqa: E402

BODY = {"text": "A warm, funny and quietly moving film that earns every one of its quiet moments."}


def rollup(pid: int) -> dict[str, int]:
    """kB figures of /proc/<pid>/smaps_rollup."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, rest = line.split(":", 1)
        values[key] = int(rest.split()[0])
    values["USS"] = values["Private_Clean"] + values["Private_Dirty"]
    return values


def weights_mapping(pid: int) -> dict[str, int]:
    """kB of the worker's mappings of *.safetensors files: how much of the weights it shares."""
    values = {"Rss": 0, "Pss": 0, "Private": 0}
    in_weights = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
            in_weights = line.rstrip().endswith(".safetensors")
        elif in_weights and head[0] in ("Rss:", "Pss:"):
            values[head[0][:-1]] += int(head[1])
        elif in_weights and head[0] in ("Private_Clean:", "Private_Dirty:"):
            values["Private"] += int(head[1])
    return values


def weight_bytes(model_dir: Path) -> int:
    total = 0
    for file in model_dir.glob("*.safetensors"):
        with safe_open(file, "pt") as f:
            for key in f.keys():
                s = f.get_slice(key)
                n = 1
                for d in s.get_shape():
                    n *= d
                total += n * {"F32": 4, "BF16": 2, "F16": 2}.get(s.get_dtype(), 4)
    return total


FLOOR = """
import os, sys
sys.path.insert(0, sys.argv[1])
import ts.model_service_worker  # TorchServe's worker, which imports torch
import attention_handler, gradients_handler  # what TorchServe imports before it loads a model
v = dict(l.split(":", 1) for l in open(f"/proc/{os.getpid()}/smaps_rollup").read().splitlines()[1:])
kb = lambda k: int(v[k].split()[0])
heavy = [m for m in ("transformers", "torch._dynamo", "sympy", "captum", "matplotlib", "accelerate")
         if m in sys.modules]
print(kb("Rss"), kb("Pss"), kb("Private_Clean") + kb("Private_Dirty"), kb("Private_Dirty"), ",".join(heavy) or "-")
"""


def runtime_floor() -> tuple:
    """kB RSS, PSS, USS, private dirty of a bare Python that imports what a worker imports
    before its model, and the heavy packages it pulled: what every TorchServe worker (its own
    interpreter) costs whatever the model. Run while the workers are up, so that the shared
    libraries' pages count as shared, as they do for an extra worker."""
    out = subprocess.run(
        [sys.executable, "-c", FLOOR, str(ROOT / "handlers")], capture_output=True, text=True, check=True
    ).stdout.split()
    return (*(int(x) for x in out[:4]), out[4])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sentiment-gradients")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--requests", type=int, default=3, help="requests per worker count before measuring")
    parser.add_argument("--forkserver", choices=["on", "off", "both"], default="both")
    args = parser.parse_args()
    model_dir = next(
        Path(line.split()[2])
        for line in (ROOT / "deploy/models.txt").read_text().splitlines()
        if line.split() and line.split()[0] == args.model
    )
    weights = weight_bytes(ROOT / model_dir) / 1024
    print(
        f"# {args.model}: weights {weights / 1024:.1f} MiB; kB per worker from /proc/<pid>/smaps_rollup; "
        f"total PSS = workers + their launchers + the fork server"
    )
    header(
        "fork server",
        "workers",
        "RSS / worker",
        "PSS / worker",
        "USS / worker",
        "weights private / worker",
        "launcher PSS / worker",
        "fork server PSS",
        "total PSS",
        "added per extra worker",
        "request p50 ms (1 client, 5)",
        "scale-up to this many, s",
    )
    floor = [
        measure(args, weights, use) for use in {"on": [True], "off": [False], "both": [False, True]}[args.forkserver]
    ]
    rss, pss, uss, dirty, heavy = floor[0]
    print(
        f"# a worker's runtime without a model, as its own Python (TorchServe's worker + the handlers' "
        f"imports, beside the workers): RSS {rss:,} kB, PSS {pss:,} kB, USS {uss:,} kB "
        f"(private dirty {dirty:,} kB); heavy packages imported: {heavy}"
    )


def measure(args, weights: float, use_forkserver: bool) -> tuple:
    """Print a row per worker count; return runtime_floor() measured beside the last."""
    archives = {args.model: ROOT / "model_store" / f"{args.model}.mar"}
    offset = int(os.environ.get("EXFORMER_TEST_PORT_OFFSET", "0"))  # beside other servers on this machine
    with ts.serving(Path(tempfile.mkdtemp()), archives, port_offset=offset, forkserver=use_forkserver) as server:
        first_total = None
        for n in args.workers:
            began = time.perf_counter()
            r = server.manage("PUT", f"models/{args.model}?min_worker={n}&max_worker={n}&synchronous=true", timeout=300)
            assert r.status == 200, r.body
            pids = [w["pid"] for w in server.wait_ready(args.model, n)]
            scaled = time.perf_counter() - began  # 0 → 1 is the server's start, not timed here
            with concurrent.futures.ThreadPoolExecutor(n) as pool:  # so that every worker serves
                answers = list(pool.map(lambda _: server.post(args.model, BODY).status, range(args.requests * n)))
            assert set(answers) == {200}, answers
            times = []
            for _ in range(5):  # one client: does a forked worker answer as fast?
                began = time.perf_counter()
                assert server.post(args.model, BODY).status == 200
                times.append((time.perf_counter() - began) * 1000)
            stats = [rollup(pid) for pid in pids]
            mapped = [weights_mapping(pid) for pid in pids]
            fork_server, launchers = ts.fork_server_of(pids[0])
            launcher_pss = sum(rollup(pid)["Pss"] for pid in launchers)
            server_pss = rollup(fork_server)["Pss"] if fork_server else 0
            private = sum(m["Private"] for m in mapped) / n

            def mean(key, stats=stats):
                return sum(s[key] for s in stats) / len(stats)

            total = sum(s["Pss"] for s in stats) + launcher_pss + server_pss
            first_total = first_total if first_total is not None else total
            added = (total - first_total) / (n - 1) if n > 1 else 0
            print(
                f"| {'on' if use_forkserver else 'off'} | {n} | {mean('Rss'):,.0f} | {mean('Pss'):,.0f} "
                f"| {mean('USS'):,.0f} | {private:,.0f} | {launcher_pss / n:,.0f} | {server_pss:,.0f} "
                f"| {total:,.0f} | {added:,.0f} | {statistics.median(times):.0f} "
                f"| {'—' if n == args.workers[0] else f'{scaled:.1f}'} |",
                flush=True,
            )
        return runtime_floor()


if __name__ == "__main__":
    main()
