"""Serve the built visualizer (frontend/dist) and a generated /config.json on 127.0.0.1.

The page learns what to call from /config.json, written here from deploy/models.txt:

    {"inference": "http://127.0.0.1:8080",
     "models": [{"name": "minilm-attention", "handler": "attention"}, ...]}

so no model list is compiled into the page. Standard library only.

    python scripts/serve_frontend.py --port 8090 --inference http://127.0.0.1:8080

TorchServe answers the browser only from the origin in config.properties'
cors_allowed_origin (http://127.0.0.1:8090 by default): keep --port in step with it.
"""

import argparse
import functools
import json
import signal
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HANDLERS = ("attention", "gradients")


def read_models(path: Path) -> list[dict]:
    """deploy/models.txt rows `name handler model_dir config` → [{"name", "handler"}]."""
    models = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2 or fields[1] not in HANDLERS:
            raise ValueError(f"{path}:{number}: expected 'name handler ...' with handler in {HANDLERS}: {line!r}")
        models.append({"name": fields[0], "handler": fields[1]})
    return models


class Handler(SimpleHTTPRequestHandler):
    config_body = b"{}"

    def do_GET(self):
        if self.path.split("?", 1)[0] == "/config.json":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(self.config_body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(self.config_body)
            return
        super().do_GET()

    def list_directory(self, path):
        """No directory listings (GET /assets/ would list the build): a directory without an
        index.html is not found."""
        self.send_error(404, "Not Found")
        return None

    def end_headers(self):
        # index.html names hashed assets: it must never be stale; the assets may be cached.
        if not self.path.startswith("/assets/"):
            self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format, *args):
        if args and str(args[1])[:1] in "45":  # only failures: a quiet terminal otherwise
            super().log_message(format, *args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--dist", type=Path, default=ROOT / "frontend" / "dist")
    parser.add_argument("--inference", default="http://127.0.0.1:8080", help="TorchServe inference API base URL")
    parser.add_argument("--models-file", type=Path, default=ROOT / "deploy" / "models.txt")
    args = parser.parse_args(argv)

    if not (args.dist / "index.html").is_file():
        print(f"{args.dist}/index.html is missing: build the frontend (cd frontend && npm ci && npm run build)",
              file=sys.stderr)
        return 2
    config = {"inference": args.inference.rstrip("/"), "models": read_models(args.models_file)}
    handler = functools.partial(Handler, directory=str(args.dist))
    Handler.config_body = json.dumps(config).encode()
    try:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    except OSError as error:
        print(f"cannot listen on 127.0.0.1:{args.port}: {error.strerror}", file=sys.stderr)
        return 1
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # bin/stop: exit cleanly, no traceback
    print(f"visualizer on http://127.0.0.1:{args.port}/ (inference API {config['inference']}, "
          f"{len(config['models'])} models)", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
