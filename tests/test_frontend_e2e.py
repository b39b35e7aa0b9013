"""The visualizer end to end: the built page in a real Chromium against the real TorchServe.

scripts/serve_frontend.py serves frontend/dist on the one origin the test TorchServe allows
(its cors_allowed_origin), and frontend/e2e/e2e.mjs drives the page with playwright-core:
attention curves, layers, heads, masking, next-token predictions, the model overview and its
rollout toggle, the URL state, errors, attribution (when a gradients model is served: a
classifier's label, a causal LM's typed next token, a result cleared when the model changes;
"measure faithfulness": the deletion and insertion curves against random orders with their win
rates, under integrated gradients by token and saliency by word, saliency's "no completeness"),
a long prompt (heads combined on the server, then top-k rows, said on the page), the Generation
view on the causal LM's gradients archive (a continuation; 2 generated tokens against a foil, a
click on a token showing its row; words; a refused foil; the JSON download; faithfulness: the
whole answer's curves, then a clicked token's, under saliency too), a two-document RAG
conversation (a system and a user turn, the answer as a continuation, the documents as sources)
under occlusion and ContextCite (turns, source blocks, the surrogate's fit, restored from the URL)
and under integrated gradients with 4 steps (the rows outside the tolerance marked), and the render
time of 128 tokens × 12 heads, which it reports. Screenshots land in tests/artifacts/screenshots
(the RAG view: generation-rag.png; the faithfulness curves: attribution-faithfulness.png, as in docs/images).
"""

import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
from browser import ARTIFACTS, CHROMIUM, FRONTEND, require  # noqa: E402


def allowed_origin(torchserve) -> str:
    """The one browser origin the test TorchServe answers (CORS allows exactly one)."""
    config = (torchserve.workdir / "config.properties").read_text()
    return re.search(r"^cors_allowed_origin=(.*)$", config, re.M).group(1).strip()


@pytest.fixture(scope="module")
def frontend_url(torchserve):
    require(FRONTEND / "dist" / "index.html")
    origin = allowed_origin(torchserve)
    port = urlparse(origin).port
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "serve_frontend.py"),
            "--port",
            str(port),
            "--inference",
            torchserve.inference,
            "--models-file",
            str(ROOT / "deploy" / "models.txt"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 15
    while True:
        if server.poll() is not None:
            pytest.fail(
                f"serve_frontend.py exited ({server.returncode}): {server.stdout.read().strip()} "
                f"(the test TorchServe answers browsers only from {origin}, so the page must be served there)"
            )
        try:
            urllib.request.urlopen(url + "config.json", timeout=2).read()
            break
        except (urllib.error.URLError, ConnectionError):
            if time.time() > deadline:
                server.kill()
                pytest.fail(f"serve_frontend.py is not answering on {url}")
            time.sleep(0.2)
    yield url
    server.terminate()
    server.wait(timeout=10)


def test_the_visualizer_works_in_chromium_against_torchserve(frontend_url):
    screenshots = ARTIFACTS / "screenshots"
    result = subprocess.run(
        ["node", "e2e/e2e.mjs", "--url", frontend_url, "--screenshots", str(screenshots), "--chromium", CHROMIUM],
        cwd=FRONTEND,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    (ARTIFACTS / "e2e.log").write_text(output)
    print(output)  # the steps, the render time and the screenshot folder, with pytest -s or on failure
    assert result.returncode == 0, output
