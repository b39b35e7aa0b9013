"""The KServe pod's front: KServe's data-plane paths on the container port, TorchServe behind it.

TorchServe 0.12 answers KServe's inference calls itself (v1 `:predict`/`:explain` and v2
`/infer`, under its kserve/kservev2 envelopes, spoken by exformer.serving.kserve) but none of
the health and metadata paths KServe, its probes and its clients call: measured, a TorchServe
started as KServe starts it answers 404 to `/v2/health/live`, `/v2/health/ready`, `/v2`,
`/v2/models/<name>`, `/v2/models/<name>/ready`, `/v1/models` and `/v1/models/<name>`. So the
container runs this front (as KServe's stock runtime runs its wrapper before TorchServe):

- health, readiness and metadata are answered here, from TorchServe's management API on the
  pod's loopback (a model is ready when one of its workers is READY);
- inference is passed through to TorchServe's inference API on the pod's loopback unchanged:
  the body, the status and the content type, so the envelopes' per-instance errors and the
  tensors reach the client exactly as TorchServe made them (and TorchServe's worker pool does
  the work); `/predictions/…` and `/explanations/…` too, so `exformer.Client` and `exformer
  explain` work against the InferenceService's URL as against a TorchServe. A body over
  TorchServe's `max_request_size` is answered here, a JSON 413 naming `body` and the limit,
  and never forwarded (TorchServe itself would answer an empty-bodied 413).

Token authorization is TorchServe's: a client's `Authorization: Bearer <inference key>` is
passed on, and the metadata paths here ask for the same key (from TorchServe's key_file.json).
The health and readiness paths are open, as Kubernetes probes carry no token.

    python -m exformer.serving.kserve_front --model-store /mnt/models/model-store \\
        --ts-config /mnt/models/config/config.properties [--address http://0.0.0.0:8080]

starts TorchServe (its workers forked from exformer's fork server) and the front, and exits
with TorchServe. `EXFORMER_FRONT_ADDRESS` overrides `--address`, as TS_* variables override
TorchServe's addresses (enable_envvars_config).
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import overload
from urllib.parse import urlsplit

import httpx

PLATFORM = "exformer-torchserve"
PASSED_HEADERS = ("content-type", "authorization", "accept")
TORCHSERVE_MAX_REQUEST_SIZE = 6553500  # bytes: TorchServe's default max_request_size


# --- TorchServe's side: where it listens, its keys, its models ---------------------------------


@overload
def torchserve_setting(config: str, name: str, default: str) -> str: ...
@overload
def torchserve_setting(config: str, name: str, default: None = None) -> str | None: ...
def torchserve_setting(config: str, name: str, default: str | None = None) -> str | None:
    """A config.properties setting as TorchServe reads it: TS_<NAME> first (enable_envvars_config)."""
    value = os.environ.get(f"TS_{name.upper()}")
    if value is not None:
        return value
    found = re.search(rf"^\s*{re.escape(name)}\s*=\s*(.*?)\s*$", config, flags=re.M)
    return found.group(1) if found else default


def loopback(address: str) -> str:
    """TorchServe's address as the front reaches it inside the pod (0.0.0.0 → 127.0.0.1)."""
    parts = urlsplit(address)
    host = "127.0.0.1" if parts.hostname in (None, "0.0.0.0", "") else parts.hostname
    return f"{parts.scheme or 'http'}://{host}:{parts.port}"


class TorchServeBehind:
    """The TorchServe the front passes calls to."""

    def __init__(self, config: str, workdir: Path):
        self.inference = loopback(torchserve_setting(config, "inference_address", "http://127.0.0.1:8080"))
        self.management = loopback(torchserve_setting(config, "management_address", "http://127.0.0.1:8081"))
        disabled = torchserve_setting(config, "disable_token_authorization", "false")
        self.tokens = str(disabled).strip().lower() != "true"
        self.max_request_size = int(torchserve_setting(config, "max_request_size", str(TORCHSERVE_MAX_REQUEST_SIZE)))
        self.key_file = workdir / "key_file.json"
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10.0))

    def key(self, kind: str) -> str | None:
        """TorchServe's current key of `kind` (it writes key_file.json at start)."""
        if not self.tokens:
            return None
        try:
            return json.loads(self.key_file.read_text())[kind]["key"]
        except (OSError, ValueError, KeyError):
            return None

    async def models(self) -> dict[str, dict]:
        """name → {"version", "ready"} of every registered model (the management API)."""
        headers = _bearer(self.key("management"))
        names, page = [], None
        while True:
            query = {"limit": 100, **({"next_page_token": page} if page else {})}
            listing = (await self.http.get(f"{self.management}/models", params=query, headers=headers)).json()
            names += [m["modelName"] for m in listing.get("models", [])]
            page = listing.get("nextPageToken")
            if not page:
                break
        described = await asyncio.gather(*(self.describe(name) for name in names))
        return dict(zip(names, described))

    async def describe(self, name: str) -> dict | None:
        answer = await self.http.get(f"{self.management}/models/{name}", headers=_bearer(self.key("management")))
        if answer.status_code != 200:
            return None
        info = answer.json()[0]
        ready = any(w.get("status") == "READY" for w in info.get("workers", []))
        return {"version": str(info.get("modelVersion", "")), "ready": ready}


def _bearer(key: str | None) -> dict:
    return {"Authorization": f"Bearer {key}"} if key else {}


# --- the front: a small ASGI app ----------------------------------------------------------------


def app(behind: TorchServeBehind):
    """The Starlette app: KServe's v1/v2 health and metadata here, inference passed through."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def too_large(size: int | None) -> JSONResponse:
        """The contract's 413 (with KServe's `error` key), where TorchServe would answer an empty one."""
        sent = f"{size} bytes, " if size is not None else ""
        message = (
            f"body: {sent}over this server's max_request_size ({behind.max_request_size} bytes, "
            "config.properties); send a shorter text, or fewer instances per call"
        )
        return JSONResponse(
            {"error": message, "code": 413, "type": "PayloadTooLarge", "message": message, "field": "body"},
            status_code=413,
        )

    async def bounded_body(request: Request) -> bytes | JSONResponse:
        """The body, or the 413 as soon as it passes max_request_size (declared or read)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > behind.max_request_size:
            return too_large(int(declared))
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > behind.max_request_size:
                return too_large(None)
            chunks.append(chunk)
        return b"".join(chunks)

    def authorized(request: Request) -> bool:
        key = behind.key("inference")
        return key is None or request.headers.get("authorization") == f"Bearer {key}"

    async def model_or_error(request: Request, need_token: bool):
        if need_token and not authorized(request):
            return None, error(
                401,
                "Token Authorization failed. Token either incorrect, expired, or not provided "
                "correctly (Authorization: Bearer <inference key>)",
            )
        name = request.path_params["name"]
        described = await behind.describe(name)
        if described is None:
            return None, error(404, f"Model with name {name} does not exist.")
        return (name, described), None

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def alive(request: Request) -> Response:  # v1's liveness: the server's root
        return JSONResponse({"status": "alive"})

    async def ready(request: Request) -> Response:
        try:
            models = await behind.models()
        except httpx.HTTPError:
            models = {}
        is_ready = bool(models) and all(m and m["ready"] for m in models.values())
        return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)

    async def model_ready(request: Request) -> Response:
        found, failed = await model_or_error(request, need_token=False)
        if failed:
            return failed
        name, described = found
        return JSONResponse({"name": name, "ready": described["ready"]}, status_code=200 if described["ready"] else 503)

    async def v2_model(request: Request) -> Response:
        found, failed = await model_or_error(request, need_token=True)
        if failed:
            return failed
        name, described = found
        return JSONResponse(
            {
                "name": name,
                "versions": [described["version"]],
                "platform": PLATFORM,
                # one BYTES input holding the JSON request, or inputs named after its fields; the
                # outputs are the answer's fields, which depend on the request (docs/kserve.md)
                "inputs": [{"name": "request", "datatype": "BYTES", "shape": [1]}],
                "outputs": [],
            }
        )

    async def v1_models(request: Request) -> Response:
        if not authorized(request):
            return error(401, "Token Authorization failed (Authorization: Bearer <inference key>)")
        return JSONResponse({"models": sorted(await behind.models())})

    async def server(request: Request) -> Response:
        from exformer import __version__

        return JSONResponse({"name": PLATFORM, "version": __version__, "extensions": []})

    async def passed_through(request: Request) -> Response:
        """The call as TorchServe answers it: status, body and content type unchanged."""
        headers = {k: v for k, v in request.headers.items() if k.lower() in PASSED_HEADERS}
        body = await bounded_body(request)
        if isinstance(body, Response):
            return body
        try:
            answer = await behind.http.request(
                request.method,
                f"{behind.inference}{request.url.path}",
                params=request.query_params,
                content=body,
                headers=headers,
            )
        except httpx.ConnectError:
            return error(503, "TorchServe is not accepting connections yet")
        kept = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type",)}
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    routes = [
        Route("/", alive),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}", v2_model),
        Route("/v2/models/{name}/infer", passed_through, methods=["POST"]),
        Route("/v1/models", v1_models),
        Route("/v1/models/{name}:predict", passed_through, methods=["POST"]),
        Route("/v1/models/{name}:explain", passed_through, methods=["POST"]),
        Route("/v1/models/{name}", model_ready),
        Route("/predictions/{path:path}", passed_through, methods=["POST", "PUT"]),
        Route("/explanations/{path:path}", passed_through, methods=["POST", "PUT"]),
        Route("/ping", passed_through, methods=["GET"]),
    ]
    return Starlette(routes=routes)


# --- the container's command: TorchServe and the front, ending together --------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-store", required=True)
    parser.add_argument("--ts-config", required=True)
    parser.add_argument("--address", default="http://0.0.0.0:8080", help="where the front listens")
    args = parser.parse_args(argv)
    address = urlsplit(os.environ.get("EXFORMER_FRONT_ADDRESS", args.address))
    config = Path(args.ts_config).read_text()
    workdir = Path.cwd()
    torchserve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exformer.serving.forkserver",
            "torchserve",
            "--start",
            "--foreground",
            "--ncs",
            "--model-store",
            args.model_store,
            "--ts-config",
            args.ts_config,
        ],
        env={"TS_DECODE_INPUT_REQUEST": "false", **os.environ},
    )
    import uvicorn

    def stop_torchserve() -> None:
        """As `torchserve --stop` does: end the frontend (its pid file), which ends its workers;
        the foreground launcher then exits too."""
        try:
            os.kill(int(Path(tempfile.gettempdir(), ".model_server.pid").read_text()), signal.SIGTERM)
        except (OSError, ValueError):
            torchserve.terminate()

    front = uvicorn.Server(
        uvicorn.Config(
            app(TorchServeBehind(config, workdir)),
            host=address.hostname,
            port=address.port or 8080,
            log_level="warning",
            access_log=False,
        )
    )

    async def run() -> int:
        serving = asyncio.create_task(front.serve())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # the pod stops: TorchServe first, then the front
            loop.add_signal_handler(sig, stop_torchserve)
        code = await asyncio.to_thread(torchserve.wait)
        front.should_exit = True
        await serving
        return code

    # ours above, so TorchServe stops with the pod (uvicorn's own handlers would stop the front alone)
    front.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    started = time.time()
    code = asyncio.run(run())
    print(
        f"exformer.serving.kserve_front: TorchServe exited with {code} after {time.time() - started:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
