"""Load against a running TorchServe on 127.0.0.1 (bin/serve): throughput and latency for
concurrency 1/4/16, attention and gradients, with 1 and 2 workers. Bounded: each cell sends
at most --requests requests and stops after --seconds.

    .venv/bin/python bench/load.py [--requests 400 --seconds 20]
"""

import argparse
import concurrent.futures
import json
import os
import platform
import threading
import time
import urllib.request

from table import header

CASES = {
    "attention": (
        "minilm-attention",
        {"text": "The quick brown fox jumps over the lazy dog near the river bank.", "encoding": "float16-base64"},
    ),
    "gradients": ("sentiment-gradients", {"text": "A warm, funny and quietly moving film.", "n_steps": 50}),
}


def call(url, body, timeout=300):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout) as r:
        r.read()
        return time.perf_counter() - start, r.status


def scale(management, model, n):
    url = f"{management}/models/{model}?min_worker={n}&max_worker={n}&synchronous=true"
    urllib.request.urlopen(urllib.request.Request(url, method="PUT"), timeout=300).read()
    while True:  # synchronous=true returns when workers start; wait until they are READY
        info = json.loads(urllib.request.urlopen(f"{management}/models/{model}").read())[0]
        if sum(w["status"] == "READY" for w in info["workers"]) == n:
            return
        time.sleep(0.5)


def run_cell(url, body, concurrency, max_requests, max_seconds):
    latencies, errors = [], 0
    deadline = time.perf_counter() + max_seconds
    sent = 0
    lock = threading.Lock()  # every count the clients share (sent, latencies, errors) changes under it

    def client():
        nonlocal sent, errors
        while time.perf_counter() < deadline:
            with lock:
                if sent >= max_requests:
                    return
                sent += 1
            try:
                latency, _ = call(url, body)
            except Exception:
                with lock:
                    errors += 1
            else:
                with lock:
                    latencies.append(latency)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(client) for _ in range(concurrency)]:
            f.result()
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pick(q):  # a cell where every request failed has no latencies: report its errors, not a crash
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(q * (len(latencies) - 1) + 0.5))] * 1e3

    return len(latencies) / elapsed, pick(0.5), pick(0.99), len(latencies), errors


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inference", default="http://127.0.0.1:8080")
    parser.add_argument("--management", default="http://127.0.0.1:8081")
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--requests", type=int, default=400, help="at most this many requests per cell")
    parser.add_argument("--seconds", type=float, default=20, help="and at most this long per cell")
    args = parser.parse_args()
    for host in (args.inference, args.management):
        assert "//127.0.0.1:" in host or "//localhost:" in host, "load tests target this machine only"
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"each cell: at most {args.requests} requests or {args.seconds:.0f} s"
    )
    header(
        "case", "workers", "concurrency", "throughput req/s", "p50 ms", "p99 ms", "answered", "errors", text_columns=1
    )
    throughput = {}
    for case in args.cases:
        model, body = CASES[case]
        url = f"{args.inference}/predictions/{model}"
        for workers in args.workers:
            scale(args.management, model, workers)
            call(url, body)  # warm every worker's first request out of the timings
            call(url, body)
            for c in args.concurrency:
                rps, p50, p99, n, errors = run_cell(url, body, c, args.requests, args.seconds)
                throughput[case, workers, c] = rps
                print(f"| {case} | {workers} | {c} | {rps:.2f} | {p50:.0f} | {p99:.0f} | {n} | {errors} |")
        scale(args.management, model, 1)
    for case in args.cases:
        if (case, 1, max(args.concurrency)) in throughput and (case, 2, max(args.concurrency)) in throughput:
            c = max(args.concurrency)
            print(
                f"# {case}: 2 workers / 1 worker throughput at concurrency {c}: "
                f"{throughput[case, 2, c] / throughput[case, 1, c]:.2f}x"
            )


if __name__ == "__main__":
    main()
