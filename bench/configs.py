"""One model served under several model-configs side by side, in one TorchServe and one run:
throughput and latency per concurrency, and each worker's memory afterwards. Used for the
defaults in deploy/*.yaml (batching, trim_heap_mb). Starts its own TorchServe on
127.0.0.1:18080-18082; bounded: each cell sends at most --requests requests.

    .venv/bin/python bench/configs.py                      # the README's comparisons
    .venv/bin/python bench/configs.py --handler gradients --model build/models/sentiment \\
        --variant default: --variant batch2 batchSize=2 --variant no-trim handler.trim_heap_mb=0
"""

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/support: a TorchServe on loopback
sys.path.insert(0, str(ROOT / "bench"))
from load import run_cell  # noqa: E402
from memory import rollup  # noqa: E402
from support import torchserve as ts  # noqa: E402
from table import header  # noqa: E402

BODIES = {
    "attention": {
        "text": "The quick brown fox jumps over the lazy dog near the river bank.",
        "encoding": "float16-base64",
    },
    "gradients": {
        "text": " ".join(["A warm, funny and quietly moving film that earns its quiet moments."] * 6),
        "n_steps": 50,
    },
}
README = [  # (handler, model dir, variants)
    (
        "attention",
        "build/models/minilm",
        [("batchSize 1 (default)", {}), ("batchSize 4, 20 ms", {"batchSize": 4, "maxBatchDelay": 20})],
    ),
    (
        "gradients",
        "build/models/sentiment",
        [
            ("batchSize 1, trim 64 MB (default)", {}),
            ("batchSize 2, 20 ms", {"batchSize": 2, "maxBatchDelay": 20}),
            ("no heap trim", {"handler.trim_heap_mb": 0}),
        ],
    ),
]


def model_config(handler: str, overrides: dict) -> str:
    config = yaml.safe_load((ROOT / "deploy" / f"{handler}.yaml").read_text())
    config["minWorkers"] = config["maxWorkers"] = 1
    config["handler"] = {**(config.get("handler") or {}), "torch_threads": 1}
    for key, value in overrides.items():
        section, _, name = key.rpartition(".")
        (config.setdefault(section, {}) if section else config)[name] = value
    return yaml.safe_dump(config)


def archive_variant(work: Path, name: str, handler: str, model_dir: str, overrides: dict) -> Path:
    """An archive of `model_dir` under the handler's default model-config plus `overrides`."""
    config = work / f"{name}.yaml"
    config.write_text(model_config(handler, overrides))
    return ts.archive(name, handler, ROOT / model_dir, config, work)


def parse_variant(words: list[str]) -> tuple[str, dict]:
    name, overrides = words[0].rstrip(":"), {}
    for word in words[1:]:
        key, _, value = word.partition("=")
        overrides[key] = yaml.safe_load(value)
    return name, overrides


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--handler", choices=["attention", "gradients"])
    parser.add_argument("--model", help="model directory (with --handler)")
    parser.add_argument(
        "--variant",
        nargs="+",
        action="append",
        metavar="NAME [KEY=VALUE ...]",
        help="model-config overrides; handler.X for handler settings",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--requests", type=int, default=24, help="at most this many requests per cell")
    parser.add_argument("--seconds", type=float, default=60, help="and at most this long per cell")
    args = parser.parse_args()
    groups = README if not args.handler else [(args.handler, args.model, [parse_variant(v) for v in args.variant])]

    work = Path(tempfile.mkdtemp())
    archives, rows = {}, []
    for handler, model_dir, variants in groups:
        for label, overrides in variants:
            name = f"v{len(archives)}-{handler}"
            archives[name] = archive_variant(work, name, handler, model_dir, overrides)
            rows.append((name, handler, label))
    print(
        f"# {platform.machine()}, one worker of 1 thread per variant; each cell at most "
        f"{args.requests} requests or {args.seconds:.0f} s"
    )
    header(
        "handler",
        "variant",
        "concurrency",
        "throughput req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "worker USS MB after",
        text_columns=2,
    )
    with ts.serving(work / "server", archives) as server:
        results = {}
        for c in args.concurrency:
            for name, handler, _label in rows:  # variants interleaved, so drift hits all alike
                url = f"{server.inference}/predictions/{name}"
                server.post(name, BODIES[handler])  # warm-up
                results[name, c] = run_cell(url, BODIES[handler], c, args.requests, args.seconds)
        for name, handler, label in rows:
            pid = server.workers(name)[0]["pid"]
            uss = rollup(pid)["USS"] / 1024
            for c in args.concurrency:
                rps, p50, p99, n, errors = results[name, c]
                print(f"| {handler} | {label} | {c} | {rps:.2f} | {p50:.0f} | {p99:.0f} | {errors} | {uss:.0f} |")
    print(f"# bodies: {json.dumps(BODIES)[:200]}")


if __name__ == "__main__":
    main()
