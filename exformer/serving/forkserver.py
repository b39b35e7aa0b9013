"""TorchServe workers forked from one process that has already imported torch and transformers.

TorchServe starts every worker as a new Python (`<python> ts/model_service_worker.py --sock-name
…`), so each worker pays for its own copy of what importing torch, transformers' model code
(which pulls torch._dynamo and sympy) and tokenizers leaves in memory: ~285 MB private (USS) per
worker, whatever the model. A fork server (as gunicorn's `--preload`, or Android's zygote)
imports that once; the workers are forked from it and share those pages copy-on-write, so an
extra worker adds only what it touches: its model's modules, tokenizer and activations.

    python -m exformer.serving.forkserver torchserve --start --ts-config … --models …

starts TorchServe with `forkserver-python` (beside this file) as the workers' Python: that
launcher runs `client()` here, which asks the fork server of this TorchServe (started by the
first worker, gone with the TorchServe) for a worker and lives as long as it, so TorchServe
sees one process per worker as before; killing the launcher kills its worker, and a killed
worker ends its launcher. Anything else run through the launcher, or any failure to reach
the fork server, runs the ordinary Python instead. `EXFORMER_FORKSERVER=0` turns it off.

The worker runs TorchServe's own `model_service_worker.py` (its path is checked), with the
launcher's argv, environment, working directory and stdin/stdout/stderr; the archive's
`exformer` and handler are imported in the worker from the archive, as without a fork server.
The fork server refuses to fork once CUDA is initialised (a forked child cannot use it), and
answers only processes of its own user. This module imports nothing outside the standard
library at module level: the launcher runs it with `python -I -S`.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import runpy
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

LAUNCHER = Path(__file__).with_name("forkserver-python")
# What the handlers import, loaded once in the fork server. transformers' model machinery is
# imported by any model load; the model classes themselves are left to each worker.
PRELOAD = (
    "torch",
    "numpy",
    "orjson",
    "pydantic",
    "tokenizers",
    "safetensors.torch",
    "transformers",
    "transformers.modeling_utils",
    "accelerate",
    "ts.model_service_worker",
    "ts.torch_handler.base_handler",
)
OUR_MODULES = (
    "exformer.serving.handler",
    "exformer.explain.dispatch",
    "exformer.explain.attention",
    "exformer.explain.methods",
)
CONNECT_SECONDS = 60.0


def address(frontend_pid: int) -> str:
    """An abstract socket (no file to clean up), one per TorchServe frontend."""
    return f"\0exformer-forkserver-{os.getuid()}-{frontend_pid}"


# --- the launcher's side ------------------------------------------------------------------------


def client(argv: list[str]) -> None:
    """Be TorchServe's worker process: ask the fork server for the worker, wait for its end."""
    python = os.environ.get("EXFORMER_WORKER_PYTHON") or sys.executable
    is_worker = len(argv) > 0 and Path(argv[0]).name == "model_service_worker.py"
    if is_worker and os.environ.get("EXFORMER_FORKSERVER", "1") != "0":
        try:
            connection = _connect(python)
        except OSError as error:
            print(
                f"exformer.serving.forkserver: no fork server ({error}); starting a plain worker",
                file=sys.stderr,
                flush=True,
            )
        else:
            sys.exit(_run_forked(connection, argv))
    os.execv(python, [python, *argv])


def _connect(python: str) -> socket.socket:
    """Connect to this TorchServe's fork server, starting it if nobody has."""
    name = address(os.getppid())
    started = False
    deadline = time.monotonic() + CONNECT_SECONDS
    while True:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(name)
            return connection
        except (ConnectionRefusedError, FileNotFoundError) as error:
            connection.close()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the fork server did not answer within {CONNECT_SECONDS:.0f} s") from error
        if not started:  # several workers may start one each: the first to bind the address serves
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            # Beside TorchServe's own logs: $LOG_LOCATION, else logs/ in the frontend's directory.
            logs = os.environ.get("LOG_LOCATION") or Path(f"/proc/{os.getppid()}/cwd").resolve() / "logs"
            log = Path(logs) / "forkserver.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            subprocess.Popen(
                [python, "-I", str(Path(__file__)), "serve", str(os.getppid())],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=open(log, "ab"),
                start_new_session=True,
                close_fds=True,
            )
            started = True
        time.sleep(0.05)


def _run_forked(connection: socket.socket, argv: list[str]) -> int:
    """Send the worker's argv, environment, directory and stdio; return its exit status, or run
    a plain worker when the fork server refuses."""
    request = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    socket.send_fds(connection, [struct.pack("!I", len(request)) + request], [0, 1, 2])
    lines = connection.makefile("r")
    first = lines.readline()  # "forked <pid>" or "refused <why>"
    if first.startswith("refused"):
        print(f"exformer.serving.forkserver: {first.strip()}; starting a plain worker", file=sys.stderr, flush=True)
        python = os.environ.get("EXFORMER_WORKER_PYTHON") or sys.executable
        os.execv(python, [python, *argv])
    last = lines.readline().split()  # "exited <status>"; nothing if the fork server died first
    return int(last[1]) if len(last) == 2 and last[0] == "exited" else 1


# --- the fork server ----------------------------------------------------------------------------


def serve(frontend_pid: int) -> None:
    """Import once, then fork a worker per connection until the TorchServe frontend exits."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(address(frontend_pid))  # first, so a second fork server gives way at once
    except OSError:
        return
    listener.listen(64)
    frontend = os.pidfd_open(frontend_pid)
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # is_available() without initialising CUDA
    _preload()
    worker_module = importlib.import_module("ts.model_service_worker")
    assert worker_module.__file__ is not None  # a module from a file
    worker_script = str(Path(worker_module.__file__).resolve())
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(frontend, selectors.EVENT_READ, "frontend")
    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd → (pid, the launcher's connection)
    _log(f"serving TorchServe {frontend_pid}; preloaded {', '.join(PRELOAD)}")
    while True:
        for key, _ in selector.select():
            if key.data == "frontend":
                _log("the TorchServe frontend exited")
                return
            if key.data == "accept":
                connection, _ = listener.accept()
                child = _fork(
                    connection,
                    worker_script,
                    keep_closed=[listener, frontend, selector, *children, *[c for _, c in children.values()]],
                )
                if isinstance(child, str):
                    _log(f"refused: {child}")
                    _send(connection, f"refused {child}\n")
                    connection.close()
                    continue
                pid, pidfd = child
                _send(connection, f"forked {pid}\n")
                children[pidfd] = (pid, connection)
                selector.register(pidfd, selectors.EVENT_READ, "child")
            else:
                pidfd = key.fd
                pid, connection = children.pop(pidfd)
                selector.unregister(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(status)
                code = 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell says
                _send(connection, f"exited {code}\n")
                connection.close()


def _send(connection: socket.socket, line: str) -> None:
    try:
        connection.sendall(line.encode())
    except OSError:  # the launcher is gone
        pass


def _preload() -> None:
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError as error:
            _log(f"not preloaded: {name} ({error})")
    # Our own modules bring in the rest of what the handlers import; then they are forgotten, so
    # each worker imports the exformer its archive carries.
    for name in OUR_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as error:
            _log(f"not preloaded: {name} ({error})")
    for name in [n for n in sys.modules if n == "exformer" or n.startswith("exformer.")]:
        if name != __name__:
            del sys.modules[name]
    gc.collect()
    gc.freeze()  # the workers' collectors never visit (and so never write to) these objects


def _fork(connection: socket.socket, worker_script: str, keep_closed: list) -> tuple[int, int] | str:
    """Fork one worker for the launcher on `connection`: (pid, pidfd), or why not."""
    creds = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    fds: list[int] = []
    reason: str | None  # why the worker is not forked
    try:
        connection.settimeout(10)  # one silent client must not stall every other worker's start
        message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
        size = struct.unpack("!I", message[:4])[0]
        while len(message) < 4 + size:
            chunk = connection.recv(4 + size - len(message))
            if not chunk:
                raise ConnectionError("the launcher closed the connection")
            message += chunk
        request = json.loads(message[4 : 4 + size])
        connection.settimeout(None)
    except (OSError, ValueError, struct.error) as error:
        reason = f"a bad request ({error})"
    else:
        reason = None
        if uid != os.getuid():
            reason = f"uid {uid} is not ours"
        elif (
            not isinstance(request, dict)
            or len(fds) != 3
            or not request.get("argv")
            or str(Path(request["argv"][0]).resolve()) != worker_script
        ):
            reason = f"not TorchServe's worker: {request.get('argv', [])[:1]}"
        elif "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
            reason = "CUDA is initialised in the fork server"
    if reason:
        for fd in fds:
            os.close(fd)
        return reason
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            for item in keep_closed:
                item.close() if hasattr(item, "close") else os.close(item)
            _become_worker(request, fds, connection)
        finally:
            os._exit(1)
    for fd in fds:
        os.close(fd)
    return pid, os.pidfd_open(pid)


def _become_worker(request: dict, fds: list[int], connection: socket.socket) -> None:
    """Take the launcher's stdio, environment and directory, and run TorchServe's worker."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    script, *arguments = request["argv"]
    # The path a fresh `python script` would have: the script's folder, PYTHONPATH (the archive
    # first), then the interpreter's own; nothing of the model the fork server may have seen.
    own = [p for p in sys.path if p and p not in _env_paths()]
    sys.path[:] = [str(Path(script).parent), *_env_paths(request["env"]), *own]
    sys.argv = [script, *arguments]
    threading.Thread(target=_exit_with_launcher, args=(connection,), daemon=True).start()
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _env_paths(env: dict | None = None) -> list[str]:
    return [p for p in (env if env is not None else os.environ).get("PYTHONPATH", "").split(os.pathsep) if p]


def _exit_with_launcher(connection: socket.socket) -> None:
    """TorchServe ends a worker by killing its process: the launcher. Its end of the
    connection closes then, and the worker goes with it."""
    try:
        while connection.recv(64):
            pass
    except OSError:
        pass
    os._exit(0)


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} forkserver[{os.getpid()}] {message}", file=sys.stderr, flush=True)


# --- starting TorchServe --------------------------------------------------------------------------


def torchserve(arguments: list[str]) -> None:
    """`torchserve ARGUMENTS` with the launcher as the workers' Python.

    ts/model_server.py hands its frontend `sys.executable` as the Python to start workers with
    (`--python`), so that is the one setting changed here; the real interpreter is passed on in
    the environment, which the frontend gives every worker."""
    if os.environ.get("EXFORMER_FORKSERVER", "1") != "0":
        os.environ["EXFORMER_WORKER_PYTHON"] = sys.executable
        sys.executable = str(LAUNCHER)
    sys.argv = ["torchserve", *arguments]
    runpy.run_module("ts.model_server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "client":
        client(rest)
    elif command == "serve":
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
        serve(int(rest[0]))
    elif command == "torchserve":
        torchserve(rest)
    else:
        sys.exit(f"usage: python -m exformer.serving.forkserver torchserve ARGS (got {command!r})")
