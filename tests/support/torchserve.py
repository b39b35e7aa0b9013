"""A real TorchServe on loopback for tests and benchmarks: its own ports, temp dir, logs and
pid file, serving archives that bin/setup built or that `archive()` builds with archive.sh.

Works from a checkout (it reads the repository's config.properties and archive.sh).
"""

import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PORTS = {"inference": 18080, "management": 18081, "metrics": 18082}
FRONTEND_ORIGIN = "http://127.0.0.1:18090"  # tests/test_frontend_e2e.py serves the page here
# Bodies reach the handler as bytes, decoded once by orjson (TorchServe's worker would decode
# JSON with the stdlib first, and a body nested too deep would fail there, not as a 400).
SERVING_ENV = {"TS_DECODE_INPUT_REQUEST": "false"}


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class TorchServe:
    inference: str
    management: str
    workdir: Path
    process: subprocess.Popen

    def post(self, model: str, body, content_type="application/json", path="predictions", timeout=120):
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        data = data.encode() if isinstance(data, str) else data
        request = urllib.request.Request(
            f"{self.inference}/{path}/{model}",
            data=data,
            method="POST",
            headers={"Content-Type": content_type} if content_type else {},
        )
        return _send(request, timeout)

    def manage(self, method: str, path: str, timeout=60) -> Response:
        return _send(urllib.request.Request(f"{self.management}/{path}", method=method), timeout)

    def workers(self, model: str) -> list[dict]:
        return self.manage("GET", f"models/{model}").json()[0]["workers"]

    def wait_ready(self, model: str, n: int = 1, timeout: float = 180) -> list[dict]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"TorchServe exited; see {self.workdir}/logs")
            try:
                ready = [w for w in self.workers(model) if w["status"] == "READY"]
                if len(ready) >= n:
                    return ready
            except (urllib.error.URLError, ConnectionError, KeyError, IndexError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{model}: fewer than {n} ready workers after {timeout} s; see {self.workdir}/logs")

    def metrics(self) -> str:
        """The Prometheus text of the metrics address (PORTS: the inference port + 2)."""
        port = int(self.inference.rsplit(":", 1)[1]) + PORTS["metrics"] - PORTS["inference"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            return r.read().decode()

    def model_log(self) -> str:
        return (self.workdir / "logs" / "model_log.log").read_text(errors="replace")


def metric_value(text: str, series: str, **labels) -> float:
    """The value of `series` whose labels include `labels` in Prometheus text (0 if absent)."""
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name == series and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _send(request, timeout) -> Response:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return Response(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, dict(e.headers), e.read())


def serving_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The environment a test's TorchServe runs in: its temporary files and logs under `workdir`,
    offline, bodies decoded by our handlers (SERVING_ENV), and `extra`."""
    return {
        **os.environ,
        "TMPDIR": str(workdir),
        "TEMP": str(workdir),
        "LOG_LOCATION": str(workdir / "logs"),
        "METRICS_LOCATION": str(workdir / "logs"),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **SERVING_ENV,
        **extra,
    }


def start(
    workdir: Path, archives: dict[str, Path], port_offset: int = 0, wait: bool = True, forkserver: bool = True
) -> TorchServe:
    """Start TorchServe on PORTS (+ `port_offset`, for a second server beside the first)
    serving `archives` (name → .mar); wait for every model unless told not to. As bin/serve,
    workers are forked from exformer's fork server unless `forkserver` is False."""
    store = workdir / "model_store"
    store.mkdir(parents=True)
    for name, mar in archives.items():
        os.symlink(mar.resolve(), store / f"{name}.mar")
    config = (ROOT / "config.properties").read_text()
    ports = {api: port + port_offset for api, port in PORTS.items()}
    for api, port in ports.items():
        config = re.sub(rf"^{api}_address=.*$", f"{api}_address=http://127.0.0.1:{port}", config, flags=re.M)
    origin = FRONTEND_ORIGIN.replace(":18090", f":{18090 + port_offset}")  # a second server, a second page
    config = re.sub(r"^cors_allowed_origin=.*$", f"cors_allowed_origin={origin}", config, flags=re.M)
    config += (
        f"\ngrpc_inference_port={17070 + port_offset}\ngrpc_management_port={17071 + port_offset}\n"
        f"model_store={store}\n"
    )
    (workdir / "config.properties").write_text(config)
    env = serving_env(workdir, **({} if forkserver else {"EXFORMER_FORKSERVER": "0"}))
    venv_bin = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
    process = subprocess.Popen(
        [
            str(venv_bin / "python"),
            "-m",
            "exformer.serving.forkserver",
            "torchserve",
            "--start",
            "--foreground",
            "--ncs",
            "--ts-config",
            str(workdir / "config.properties"),
            "--model-store",
            str(store),
            "--models",
            *[f"{n}={n}.mar" for n in archives],
        ],
        cwd=workdir,
        env=env,
        stdout=open(workdir / "torchserve.out", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = TorchServe(
        f"http://127.0.0.1:{ports['inference']}", f"http://127.0.0.1:{ports['management']}", workdir, process
    )
    try:
        for name in archives if wait else ():
            server.wait_ready(name)
    except BaseException:
        stop(server)
        raise
    return server


def load_failure(server: TorchServe, marker: str, timeout: float = 90) -> str | None:
    """The worker log line containing `marker` (a model whose load must fail), waited for."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(1)
        log = server.model_log() if (server.workdir / "logs" / "model_log.log").exists() else ""
        line = next((ln for ln in log.splitlines() if marker in ln), None)
        if line is not None:
            return line
    return None


def stop(server: TorchServe) -> None:
    venv_bin = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
    env = {**os.environ, "TMPDIR": str(server.workdir), "TEMP": str(server.workdir)}
    subprocess.run(
        [str(venv_bin / "torchserve"), "--stop"], env=env, cwd=server.workdir, capture_output=True, timeout=60
    )
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, 9)


@contextmanager
def serving(workdir: Path, archives: dict[str, Path], **options):
    """start() for the length of a with-block; stopped however the block ends."""
    server = start(workdir, archives, **options)
    try:
        yield server
    finally:
        stop(server)


def archive(name: str, handler: str, model_dir: Path, config: Path, out: Path) -> Path:
    """Build with the user-facing archive.sh into `out`."""
    subprocess.run(
        [str(ROOT / "archive.sh"), name, handler, str(model_dir), str(config)],
        check=True,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "MODEL_STORE": str(out)},
    )
    return out / f"{name}.mar"


# --- streams of requests while scaling (tests/test_scaling.py, bench/scaling.py) -----------------

# TorchServe's own answer when the worker running a request is stopped under it (scale-down,
# crash). Explanations are pure functions of the request, so a client sends it again; the
# visualizer does the same (frontend/src/api.ts).
WORKER_LOST = "Worker died."


def worker_lost(response) -> bool:
    try:
        return response.status == 500 and response.json().get("message") == WORKER_LOST
    except ValueError:
        return False


class Stream:
    """Clients posting one request after another until stopped, each sent again (once) if
    its worker was stopped under it and `resend`; every answer is kept as (time, status, sends)."""

    def __init__(self, torchserve, model, body, clients=3, resend=True, timeout=60):
        self.torchserve, self.model, self.resend, self.timeout = torchserve, model, resend, timeout
        self.body = body
        self.answers: list[tuple[float, object, int]] = []
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def _send(self):
        for sends in (1, 2) if self.resend else (1,):
            try:
                response = self.torchserve.post(self.model, self.body, timeout=self.timeout)
            except Exception as error:  # a hang shows up here as a timeout
                return repr(error), sends
            if not worker_lost(response):
                break
        return response.status, sends

    def _run(self):
        while not self.stopped.is_set():
            status, sends = self._send()
            self.answers.append((time.time(), status, sends))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        for t in self.threads:
            t.join(timeout=90)
        assert not any(t.is_alive() for t in self.threads), "a request hung"


def scale(torchserve, model, n):
    r = torchserve.manage("PUT", f"models/{model}?min_worker={n}&synchronous=true", timeout=300)  # the README's form
    assert r.status == 200, r.body
    deadline = time.time() + 180
    while time.time() < deadline:
        workers = torchserve.workers(model)
        if len(workers) == n and all(w["status"] == "READY" for w in workers):
            return workers
        time.sleep(0.3)
    raise TimeoutError(f"{model}: not {n} ready workers after 180 s")


# --- the processes behind a worker (tests/test_forkserver.py, bench/memory.py) -------------------


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def parent(pid: int) -> int | None:
    """The parent's pid; None once the process is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None


def children(pid: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and parent(int(p.name)) == pid]


def fork_server_of(worker: int) -> tuple[int | None, list[int]]:
    """The fork server a worker came from and the launchers its TorchServe started, one per
    worker; (None, []) for a worker started as its own Python."""
    fork_server = parent(worker)
    if fork_server is None or "forkserver.py serve" not in cmdline(fork_server):
        return None, []
    frontend = int(cmdline(fork_server).split()[-1])
    return fork_server, [p for p in children(frontend) if "forkserver.py client" in cmdline(p)]
