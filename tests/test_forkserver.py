"""Workers forked from exformer's fork server (exformer/serving/forkserver.py), against real TorchServes."""

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exformer.serving import forkserver
from support import torchserve as ts
from support.torchserve import cmdline, fork_server_of, parent

MODELS = ["minilm-attention", "sentiment-gradients"]


def kb(pid: int, *keys: str) -> int:
    rows = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
    return sum(int(rows[k].split()[0]) for k in keys)


def gone(pid: int, within: float = 10) -> bool:
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True  # exited, not yet reaped
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def test_every_worker_is_forked_from_one_fork_server_and_shares_its_pages(torchserve):
    workers = [w["pid"] for m in MODELS for w in torchserve.wait_ready(m)]
    servers = {fork_server_of(pid)[0] for pid in workers}
    assert len(servers) == 1 and None not in servers, "the workers of one TorchServe come from one fork server"
    (server,) = servers
    _, launchers = fork_server_of(workers[0])
    assert all(parent(pid) == int(cmdline(server).split()[-1]) for pid in launchers)
    assert "org.pytorch.serve.ModelServer" in cmdline(parent(launchers[0]))
    assert len(launchers) >= len(workers), "TorchServe sees one launcher process per worker"
    for model in MODELS:
        assert torchserve.post(model, {"text": "Shared pages."}).status == 200
    for pid in workers:
        rss, private = kb(pid, "Rss"), kb(pid, "Private_Clean", "Private_Dirty")
        # A worker started as its own Python has ~2/3 of its pages to itself (bench/memory.py).
        assert private < rss / 2, f"worker {pid}: {private} kB private of {rss} kB resident"


def test_scaling_down_ends_the_worker_and_a_killed_worker_ends_its_launcher(torchserve):
    model = "minilm-attention"
    ts.scale(torchserve, model, 2)
    pids = [w["pid"] for w in torchserve.wait_ready(model, 2)]
    ts.scale(torchserve, model, 1)
    (kept,) = [w["pid"] for w in torchserve.wait_ready(model)]
    (removed,) = set(pids) - {kept}
    assert gone(removed), "TorchServe killed the launcher; its worker must go with it"

    fork_server, launchers_before = fork_server_of(kept)
    os.kill(kept, signal.SIGKILL)
    (replacement,) = [w["pid"] for w in _ready_other_than(torchserve, model, kept)]
    _, launchers_after = fork_server_of(replacement)
    assert len(set(launchers_before) - set(launchers_after)) == 1, "the killed worker's launcher exited"
    assert parent(replacement) == fork_server, "the replacement is forked by the same fork server"
    assert torchserve.post(model, {"text": "Back again."}).status == 200


def test_workers_outlive_a_killed_fork_server_and_the_next_worker_starts_another(torchserve):
    model = "sentiment-attention"
    (worker,) = [w["pid"] for w in torchserve.wait_ready(model)]
    fork_server, _ = fork_server_of(worker)
    os.kill(fork_server, signal.SIGKILL)
    assert gone(fork_server)
    assert torchserve.post(model, {"text": "Still here."}).status == 200
    os.kill(worker, signal.SIGKILL)
    (replacement,) = [w["pid"] for w in _ready_other_than(torchserve, model, worker)]
    started_again, _ = fork_server_of(replacement)
    assert started_again not in (None, fork_server)
    assert torchserve.post(model, {"text": "Back again."}).status == 200


def _ready_other_than(torchserve, model, pid, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready = [w for w in torchserve.workers(model) if w["status"] == "READY" and w["pid"] != pid]
        if ready:
            return ready
        time.sleep(0.2)
    raise AssertionError(f"no worker of {model} replaced {pid} within {timeout} s")


def test_the_fork_server_forks_only_torchserves_worker(torchserve):
    workers = [w["pid"] for m in MODELS + ["sentiment-attention"] for w in torchserve.wait_ready(m)]
    fork_server = next(s for s in (fork_server_of(pid)[0] for pid in workers) if s)  # one may have been killed
    frontend = int(cmdline(fork_server).split()[-1])
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(forkserver.address(frontend))
    request = b'{"argv": ["/bin/true"], "env": {}, "cwd": "/"}'
    devnull = os.open(os.devnull, os.O_RDWR)
    socket.send_fds(connection, [struct.pack("!I", len(request)) + request], [devnull] * 3)
    connection.settimeout(10)
    answer = b""
    while chunk := connection.recv(256):
        answer += chunk
    assert answer == b"refused not TorchServe's worker: ['/bin/true']\n", "refused, and told why"
    os.close(devnull)
    log = Path(torchserve.workdir) / "logs" / "forkserver.log"
    assert "refused: not TorchServe's worker: ['/bin/true']" in log.read_text()


def test_a_refused_worker_runs_as_its_own_python(tmp_path):
    """A script that is not TorchServe's worker, though named like it: the launcher starts a
    fork server (for this pytest, its parent; it exits with it), which refuses; the launcher
    then runs the script with the real Python."""
    script = tmp_path / "model_service_worker.py"
    script.write_text("import sys; print('plain', sys.argv[1:])")
    launcher = Path(forkserver.__file__).with_name("forkserver-python")
    out = subprocess.run(
        [str(launcher), str(script), "--sock-name", "x"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "EXFORMER_WORKER_PYTHON": sys.executable, "LOG_LOCATION": str(tmp_path)},
    )
    assert out.stdout.strip() == "plain ['--sock-name', 'x']"
    assert f"refused not TorchServe's worker: ['{script}']; starting a plain worker" in out.stderr


def test_the_launcher_runs_anything_else_with_the_real_python():
    launcher = Path(forkserver.__file__).with_name("forkserver-python")
    out = subprocess.run(
        [str(launcher), "-c", "import sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        env={**os.environ, "EXFORMER_WORKER_PYTHON": sys.executable},
        check=True,
    )
    assert out.stdout.strip() == sys.prefix


@pytest.mark.parametrize("use_forkserver", [True, False])
def test_the_fork_server_goes_with_its_torchserve_and_can_be_turned_off(tmp_path, tiny_model_dir, use_forkserver):
    config = tmp_path / "tiny.yaml"
    config.write_text("minWorkers: 1\nmaxWorkers: 1\nresponseTimeout: 60\nhandler:\n  torch_threads: 1\n")
    archive = ts.archive("tiny-fork-attention", "attention", tiny_model_dir("bert"), config, tmp_path)
    offset = int(os.environ.get("EXFORMER_TEST_PORT_OFFSET", "0")) + 500  # beside the session's TorchServe
    with ts.serving(
        tmp_path / "server", {"tiny-fork-attention": archive}, port_offset=offset, forkserver=use_forkserver
    ) as server:
        (worker,) = [w["pid"] for w in server.wait_ready("tiny-fork-attention")]
        assert server.post("tiny-fork-attention", {"text": "A tiny test."}).status == 200
        launcher_or_frontend = parent(worker)
        if use_forkserver:
            fork_server = launcher_or_frontend
            assert "forkserver.py serve" in cmdline(fork_server)
        else:
            assert "org.pytorch.serve.ModelServer" in cmdline(launcher_or_frontend)
            assert "model_service_worker.py" in cmdline(worker)
    if use_forkserver:
        assert gone(fork_server), "the fork server outlived its TorchServe"
        assert gone(worker)
