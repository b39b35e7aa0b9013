import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tiny_models

import tiny_models  # noqa: E402

# What a test needs beyond this process, as markers ([tool.pytest.ini_options] markers):
# `pytest tests -m "not served and not browser and not image"` runs the in-process suite alone.
FIXTURE_MARKS = {"torchserve": "served", "avx2_server": "served"}  # the session's TorchServe; test_dtype's own
MODULE_MARKS = {
    "test_frontend_e2e.py": ("browser", "served"),
    "test_origin.py": ("browser", "served"),  # its own TorchServe, and a page in Chromium
    "test_kserve_image.py": ("image",),
    "test_kserve.py": ("served",),  # TorchServe started as KServe's runtime starts it
    "test_forkserver.py": ("served",),
    "test_scaling.py": ("served",),
}


# The real models' fixtures, and the parameters that name a real model (test_methods' `models`)
REAL_FIXTURES = {"sentiment", "smollm2", "lm"}
REAL_PARAMS = {"sentiment", "smollm2"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = {FIXTURE_MARKS[f] for f in getattr(item, "fixturenames", ()) if f in FIXTURE_MARKS}
        names.update(MODULE_MARKS.get(item.path.name, ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if REAL_FIXTURES & set(getattr(item, "fixturenames", ())) or REAL_PARAMS & {
            v for v in params.values() if isinstance(v, str)
        }:
            names.add("real")
        for name in sorted(names):
            item.add_marker(name)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and a busy 2-core machine makes them slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """family → saved tiny LM dir, built once per session on first use."""
    cache = {}

    def get(family: str, classifier: bool = False) -> Path:
        key = (family, classifier)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"{family}-{'cls' if classifier else 'lm'}")
            cache[key] = tiny_models.build(family, out, classifier)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def torchserve(tmp_path_factory, tiny_model_dir):
    """One real TorchServe for the whole session: the default archives plus tiny BERTs
    archived by archive.sh with a long batch delay, so concurrent requests share a batch."""
    from support import torchserve as ts

    work = tmp_path_factory.mktemp("torchserve")
    config = work / "batch.yaml"
    config.write_text(
        "minWorkers: 1\nmaxWorkers: 1\nbatchSize: 8\nmaxBatchDelay: 1500\n"
        "responseTimeout: 60\nhandler:\n  torch_threads: 1\n"
    )
    archives = {name: ROOT / "model_store" / f"{name}.mar" for name in DEFAULT_ARCHIVES}
    archives["tiny-batch-attention"] = ts.archive(
        "tiny-batch-attention", "attention", tiny_model_dir("bert"), config, work
    )
    archives["tiny-batch-gradients"] = ts.archive(
        "tiny-batch-gradients", "gradients", tiny_model_dir("bert", classifier=True), config, work
    )
    # The real sentiment model with a 2 s deadline (tests/test_limits.py makes a request overrun it).
    tight = work / "deadline.yaml"
    tight.write_text(
        f"minWorkers: 1\nmaxWorkers: 1\nbatchSize: 1\nresponseTimeout: {DEADLINE_TIMEOUT}\n"
        f"handler:\n  torch_threads: 1\n  deadline_seconds: {DEADLINE_SECONDS}\n"
    )
    archives["deadline-gradients"] = ts.archive(
        "deadline-gradients", "gradients", ROOT / "build/models/sentiment", tight, work
    )
    # Another test session on this machine (a clean-clone CI run) can take the default ports.
    offset = int(os.environ.get("EXFORMER_TEST_PORT_OFFSET", "0"))
    with ts.serving(work / "server", archives, port_offset=offset) as server:
        yield server


DEADLINE_SECONDS, DEADLINE_TIMEOUT = 2, 30  # the deadline-gradients archive's
DEFAULT_ARCHIVES = [
    line.split()[0]
    for line in (ROOT / "deploy/models.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]
