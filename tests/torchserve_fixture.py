"""A real TorchServe for the integration tests: its own ports, temp dir, logs and pid file,
serving the archives bin/setup built plus test archives built here with archive.sh."""

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORTS = {"inference": 18080, "management": 18081, "metrics": 18082}
FRONTEND_ORIGIN = "http://127.0.0.1:18090"  # tests/test_frontend_e2e.py serves the page here


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
            f"{self.inference}/{path}/{model}", data=data, method="POST",
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

    def model_log(self) -> str:
        return (self.workdir / "logs" / "model_log.log").read_text(errors="replace")


def _send(request, timeout) -> Response:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return Response(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, dict(e.headers), e.read())


def start(workdir: Path, archives: dict[str, Path]) -> TorchServe:
    """Start TorchServe on PORTS serving `archives` (name → .mar); wait for every model."""
    store = workdir / "model_store"
    store.mkdir(parents=True)
    for name, mar in archives.items():
        os.symlink(mar.resolve(), store / f"{name}.mar")
    config = (ROOT / "config.properties").read_text()
    for api, port in PORTS.items():
        config = re.sub(rf"^{api}_address=.*$", f"{api}_address=http://127.0.0.1:{port}", config, flags=re.M)
    config = re.sub(r"^cors_allowed_origin=.*$", f"cors_allowed_origin={FRONTEND_ORIGIN}", config, flags=re.M)
    config += f"\ngrpc_inference_port=17070\ngrpc_management_port=17071\nmodel_store={store}\n"
    (workdir / "config.properties").write_text(config)
    env = {**os.environ, "TMPDIR": str(workdir), "TEMP": str(workdir),
           "LOG_LOCATION": str(workdir / "logs"), "METRICS_LOCATION": str(workdir / "logs"),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    venv_bin = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
    process = subprocess.Popen(
        [str(venv_bin / "torchserve"), "--start", "--foreground", "--ncs",
         "--ts-config", str(workdir / "config.properties"), "--model-store", str(store),
         "--models", *[f"{n}={n}.mar" for n in archives]],
        cwd=workdir, env=env, stdout=open(workdir / "torchserve.out", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = TorchServe(f"http://127.0.0.1:{PORTS['inference']}", f"http://127.0.0.1:{PORTS['management']}",
                        workdir, process)
    try:
        for name in archives:
            server.wait_ready(name)
    except BaseException:
        stop(server)
        raise
    return server


def stop(server: TorchServe) -> None:
    venv_bin = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
    env = {**os.environ, "TMPDIR": str(server.workdir), "TEMP": str(server.workdir)}
    subprocess.run([str(venv_bin / "torchserve"), "--stop"], env=env, cwd=server.workdir,
                   capture_output=True, timeout=60)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, 9)


@contextmanager
def serving(workdir: Path, archives: dict[str, Path]):
    """start() for the length of a with-block; stopped however the block ends."""
    server = start(workdir, archives)
    try:
        yield server
    finally:
        stop(server)


def archive(name: str, handler: str, model_dir: Path, config: Path, out: Path) -> Path:
    """Build with the user-facing archive.sh into `out`."""
    subprocess.run([str(ROOT / "archive.sh"), name, handler, str(model_dir), str(config)],
                   check=True, capture_output=True, cwd=ROOT, env={**os.environ, "MODEL_STORE": str(out)})
    return out / f"{name}.mar"
