"""No other web page can make the server work (issue 28), in a real Chromium against a real
TorchServe: a page served from another loopback port posts to the inference API as a CORS
"simple" request (text/plain, no preflight) and nothing is explained (the handlers refuse
anything but JSON with a 415 before reading the body); its preflighted JSON request never
reaches the handler; a page on the configured visualizer origin is answered. What the server
did is read from its Prometheus metrics (exformer/serving/metrics.py) and the worker's log.

The 415 itself (its JSON, the charset and case it accepts, the header it needs) and the
visualizer's static server (no directory listings) are checked here too, without the browser.
"""

import http.client
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from browser import CHROMIUM, FRONTEND, require
from support import torchserve as ts
from support.torchserve import metric_value

ROOT = Path(__file__).resolve().parent.parent
MODEL = "tiny-origin-gradients"
OFFSET = 130 + int(os.environ.get("EXFORMER_TEST_PORT_OFFSET", "0"))  # beside the session's server
REQUEST = {"text": "A page on another origin asks for this.", "n_steps": 8}
FIX = "-H 'Content-Type: application/json'"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    work = tmp_path_factory.mktemp("origin")
    config = work / "tiny.yaml"
    config.write_text("minWorkers: 1\nmaxWorkers: 1\nresponseTimeout: 60\nhandler:\n  torch_threads: 1\n")
    mar = ts.archive(MODEL, "gradients", tiny_model_dir("bert", classifier=True), config, work)
    with ts.serving(work / "server", {MODEL: mar}, port_offset=OFFSET) as torchserve:
        yield torchserve


def allowed_origin(torchserve) -> str:
    config = (torchserve.workdir / "config.properties").read_text()
    return re.search(r"^cors_allowed_origin=(.*)$", config, re.M).group(1).strip()


@pytest.fixture(scope="module")
def pages(server, tmp_path_factory):
    """scripts/serve_frontend.py serving a blank page (and an assets/ folder) twice: on the
    visualizer's origin, which TorchServe's CORS allows, and on another loopback port."""
    dist = tmp_path_factory.mktemp("dist")
    (dist / "index.html").write_text("<!doctype html><title>a page</title><p>a page</p>\n")
    (dist / "assets").mkdir()
    (dist / "assets" / "index-abc123.js").write_text("console.log('asset');\n")
    allowed = allowed_origin(server)
    foreign = f"http://127.0.0.1:{urlparse(allowed).port + 7}"
    servers = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "scripts" / "serve_frontend.py"),
                "--port",
                str(urlparse(origin).port),
                "--dist",
                str(dist),
                "--inference",
                server.inference,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for origin in (allowed, foreign)
    ]
    try:
        for origin, process in zip((allowed, foreign), servers):
            deadline = time.time() + 15
            while True:
                if process.poll() is not None:
                    pytest.fail(f"serve_frontend.py on {origin} exited: {process.stdout.read().strip()}")
                try:
                    urllib.request.urlopen(f"{origin}/config.json", timeout=2).read()
                    break
                except (urllib.error.URLError, ConnectionError):
                    if time.time() > deadline:
                        pytest.fail(f"serve_frontend.py is not answering on {origin}")
                    time.sleep(0.2)
        yield {"allowed": allowed, "foreign": foreign}
    finally:
        for process in servers:
            process.terminate()
            process.wait(timeout=10)


# --- what the server did -----------------------------------------------------------------------


def explained(metrics: str) -> float:
    """Requests the model explained (each answered request adds one observation)."""
    return metric_value(metrics, "exformer_tokens_per_request_count", ModelName=MODEL)


def refused_for_content_type(metrics: str) -> float:
    return metric_value(metrics, "exformer_requests_refused_total", ModelName=MODEL, Field="Content-Type")


def batches(torchserve) -> int:
    """Batches the handler was given (it logs each one, refused or not)."""
    return len(re.findall(r"batch of \d+ request\(s\)", torchserve.model_log()))


def settled(torchserve, check, timeout=15.0) -> str:
    """The metrics once `check(metrics)` holds (a worker's metrics reach the port through its log)."""
    deadline = time.time() + timeout
    while True:
        metrics = torchserve.metrics()
        if check(metrics) or time.time() > deadline:
            return metrics
        time.sleep(0.25)


def browser_fetches(page: str, calls: list[dict]) -> list[dict]:
    """Open `page` in Chromium and run each fetch(url, init) from it, in order: what the page
    could see of each answer ({"type", "status", "body"}) or the error fetch threw."""
    script = """
import { chromium } from "playwright-core";
import { CHROMIUM_ARGS } from "./e2e/steps.mjs";
const [page_url, calls, executablePath] = JSON.parse(process.argv[1]);
const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
try {
  const page = await browser.newPage();
  await page.goto(page_url);
  const out = [];
  for (const call of calls) {
    out.push(await page.evaluate(async ({ url, init }) => {
      try {
        const r = await fetch(url, init);
        return { type: r.type, status: r.status, body: r.type === "opaque" ? null : await r.text() };
      } catch (e) {
        return { error: `${e.name}: ${e.message}` };
      }
    }, call));
  }
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
"""
    result = subprocess.run(
        ["node", "--input-type=module", "-e", script, json.dumps([page, calls, CHROMIUM])],
        cwd=FRONTEND,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- the browser ---------------------------------------------------------------------------------


def test_another_origin_cannot_make_the_server_explain_and_the_visualizers_origin_can(server, pages):
    require()
    url = f"{server.inference}/predictions/{MODEL}"
    before, batches_before = server.metrics(), batches(server)
    assert explained(before) == 0 and refused_for_content_type(before) == 0

    # 1. A simple request: the browser sends it without asking; the page cannot read the answer.
    simple, preflighted = browser_fetches(
        pages["foreign"] + "/",
        [
            {
                "url": url,
                "init": {
                    "method": "POST",
                    "mode": "no-cors",
                    "headers": {"Content-Type": "text/plain"},
                    "body": json.dumps(REQUEST),
                },
            },
            {
                "url": url,
                "init": {
                    "method": "POST",
                    "headers": {"Content-Type": "application/json"},
                    "body": json.dumps(REQUEST),
                },
            },
        ],
    )
    assert simple == {"type": "opaque", "status": 0, "body": None}
    assert preflighted["error"].startswith("TypeError")  # the preflight named another origin
    after = settled(server, lambda m: refused_for_content_type(m) >= 1)
    assert explained(after) == 0  # nothing was explained for another origin
    assert refused_for_content_type(after) == 1  # the simple request: refused, 415, before any work
    assert batches(server) == batches_before + 1  # the preflighted request never reached the handler

    # 2. The visualizer's origin: the preflight passes and the answer is readable.
    (answer,) = browser_fetches(
        pages["allowed"] + "/",
        [
            {
                "url": url,
                "init": {
                    "method": "POST",
                    "headers": {"Content-Type": "application/json"},
                    "body": json.dumps(REQUEST),
                },
            }
        ],
    )
    assert answer["type"] == "cors" and answer["status"] == 200, answer
    out = json.loads(answer["body"])
    assert out["n_steps"] == 8 and len(out["attributions"]["raw"]) == len(out["tokens"])
    last = settled(server, lambda m: explained(m) >= 1)
    assert explained(last) == 1 and refused_for_content_type(last) == 1


# --- the 415 -------------------------------------------------------------------------------------


def raw_post(torchserve, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
    """A POST with exactly these headers (urllib would add a form content type of its own)."""
    url = urlparse(torchserve.inference)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        connection.request("POST", f"/predictions/{MODEL}", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        "application/jsonp",
        "text/json",
        None,
    ],
)
def test_a_body_not_sent_as_json_is_a_415_saying_what_to_add(server, content_type):
    headers = {} if content_type is None else {"Content-Type": content_type}
    status, response_headers, body = raw_post(server, json.dumps(REQUEST).encode(), headers)
    assert status == 415, body[:300]
    assert response_headers["content-type"] == "application/json"
    error = json.loads(body)
    assert error["code"] == 415 and error["type"] == "UnsupportedMediaType" and error["field"] == "Content-Type"
    assert error["message"].startswith("Content-Type: ") and FIX in error["message"]
    shown = content_type.split(";")[0] if content_type else "missing"
    assert error["message"].startswith(f"Content-Type: {shown}")


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8", "APPLICATION/JSON"],
)
def test_json_is_accepted_with_any_case_and_parameters(server, content_type):
    status, _, body = raw_post(
        server, json.dumps({"text": "Fine.", "n_steps": 4}).encode(), {"Content-Type": content_type}
    )
    assert status == 200, body[:300]
    assert json.loads(body)["n_steps"] == 4


def test_the_details_request_needs_the_json_header_too(server):
    """The empty body (the model's details): our client and the visualizer send {} as JSON."""
    status, _, body = raw_post(server, b"", {"Content-Type": "application/json", "Content-Length": "0"})
    assert status == 200 and set(json.loads(body)) == {"model"}
    status, _, body = raw_post(server, b"", {"Content-Length": "0"})
    assert status == 415 and json.loads(body)["field"] == "Content-Type"


def test_the_client_asks_for_details_and_explains_with_the_json_header(server):
    from exformer import Client

    client = Client(server.inference, management_url=server.management)
    assert client.gradients(MODEL, "Fine.", n_steps=4)["n_steps"] == 4
    assert client.gradients(MODEL).model["name"] == MODEL  # no text: the details, from an empty body


# --- the visualizer's static server ------------------------------------------------------------


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_the_static_server_lists_no_directory(pages):
    origin = pages["allowed"]
    assert get(f"{origin}/")[0] == 200 and get(f"{origin}/assets/index-abc123.js")[0] == 200
    for path in ("/assets/", "/assets", "/assets/?C=M;O=D"):
        status, body = get(origin + path)
        assert status == 404 and b"index-abc123" not in body, (path, status)
