"""exformer.Client / AsyncClient: typed results and errors from the real TorchServe, and the
resend policy against real HTTP servers (a scripted one on loopback, and a killed worker)."""

import asyncio
import concurrent.futures
import http.server
import json
import math
import os
import re
import signal
import socket
import threading
import time

import numpy as np
import pytest

from exformer import (
    AsyncClient,
    AttentionResult,
    Client,
    GradientsResult,
    RequestError,
    ServerError,
    explain_attention,
    explain_gradients,
    load_model,
)
from support.torchserve import WORKER_LOST, scale

TEXT = "The cat sat on the mat."
REVIEW = "A warm, funny and quietly moving film."
DEFAULT_MODELS = {
    "minilm-attention",
    "smollm2-attention",
    "sentiment-attention",
    "sentiment-gradients",
    "smollm2-gradients",
}


# --- the resend policy, against a scripted HTTP server on loopback ---------------------------------

TINY_ATTENTION = {
    "model": {"name": "m"},
    "tokens": [{"text": "a"}],
    "attention": {"layers": [0], "heads": [0], "encoding": "json", "shape": [1, 1, 1, 1], "data": [[[[1.0]]]]},
}
LOST = (500, {"code": 500, "type": "InternalServerException", "message": WORKER_LOST})
BUSY = (
    503,
    {
        "code": 503,
        "type": "ServiceUnavailableException",
        "message": 'Model "m" has no worker to serve inference request.',
    },
)
OK = (200, TINY_ATTENTION)


class Scripted:
    """An HTTP server answering each POST with the next (status, JSON[, delay]) of its script
    (the last one repeats), keeping every request it saw."""

    def __init__(self, script):
        self.script, self.seen = list(script), []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.seen.append((self.path, dict(self.headers), json.loads(body)))
                status, answer, *delay = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                time.sleep(delay[0] if delay else 0)
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout test)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_503_is_resent_with_backoff_until_answered():
    with Scripted([BUSY, BUSY, OK]) as server, Client(server.url, backoff=0.05) as client:
        result = client.attention("m-attention", "a", layers=[0])
    assert isinstance(result, AttentionResult) and result.attention.shape == (1, 1, 1, 1)
    assert client.last_sends == 3
    assert [body for _, _, body in server.seen] == [{"text": "a", "layers": [0], "encoding": "float16-base64"}] * 3


def test_worker_died_is_resent_but_no_other_500():
    with Scripted([LOST, OK]) as server, Client(server.url, backoff=0.01) as client:
        client.attention("m-attention", "a")
        assert client.last_sends == 2
    other = (
        500,
        {
            "code": 500,
            "type": "InternalServerError",
            "message": "internal error (KeyError); the worker is still running, see its log",
        },
    )
    with Scripted([other, OK]) as server, Client(server.url, backoff=0.01) as client:
        with pytest.raises(ServerError, match=r"500 InternalServerError: internal error \(KeyError\)") as caught:
            client.attention("m-attention", "a")
    assert caught.value.status == 500 and caught.value.sends == 1 and len(server.seen) == 1


def test_a_sigkilled_worker_507_is_resent_once_only():
    """507 "Worker died.": SIGKILL (exit 137), often the OOM killer; the request may be why."""
    killed = (507, {**LOST[1], "code": 507})
    with Scripted([killed, OK]) as server, Client(server.url, backoff=0.01) as client:
        client.attention("m-attention", "a")
        assert client.last_sends == 2
    with Scripted([killed]) as server, Client(server.url, backoff=0.01) as client:
        with pytest.raises(ServerError, match="507 InternalServerException: Worker died"):
            client.attention("m-attention", "a")
    assert len(server.seen) == 2


def test_a_4xx_is_never_resent_and_keeps_the_servers_message():
    bad = (
        400,
        {"code": 400, "type": "BadRequest", "message": "n_steps: must be an integer, got true", "field": "n_steps"},
    )
    with Scripted([bad, OK]) as server, Client(server.url, backoff=0.01) as client:
        with pytest.raises(RequestError) as caught:
            client.gradients("m-gradients", "a", n_steps=True)
    error = caught.value
    assert (error.code, error.type, error.field) == (400, "BadRequest", "n_steps")
    assert error.message == str(error) == "n_steps: must be an integer, got true"  # not "n_steps: n_steps: …"
    assert len(server.seen) == 1 and client.last_sends == 1


def test_resends_are_bounded_by_retries():
    with Scripted([BUSY]) as server, Client(server.url, retries=2, backoff=0.01) as client:
        with pytest.raises(ServerError, match="503 .*sent 3 times") as caught:
            client.attention("m-attention", "a")
    assert caught.value.status == 503 and caught.value.sends == 3 == len(server.seen)


def test_a_refused_connection_is_resent_then_reported():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Client(f"http://127.0.0.1:{port}", retries=2, backoff=0.01)
    with pytest.raises(ServerError, match="ConnectError.*sent 3 times"):
        client.attention("m-attention", "a")
    assert client.last_sends == 3


def test_a_call_timeout_overrides_the_clients_and_is_not_resent():
    with Scripted([(*OK, 1.5)]) as server, Client(server.url, timeout=60, backoff=0.01) as client:
        started = time.time()
        with pytest.raises(ServerError, match="no answer within 0.3 s"):
            client.attention("m-attention", "a", timeout=0.3)
        assert time.time() - started < 1.4 and client.last_sends == 1
        assert client.attention("m-attention", "a").attention.shape == (1, 1, 1, 1)  # the client's 60 s


def test_token_goes_as_bearer_and_python_names_map_to_the_contract():
    with Scripted([(200, {"convergence_delta": 0.0, "target": {"score": 1.0}, "baseline": {"score": 0.0}})]) as server:
        with Client(server.url, token="s3cret") as client:
            result = client.gradients("m-gradients", "a", returns=["attributions"], text_pair="b")
    path, headers, body = server.seen[0]
    assert path == "/predictions/m-gradients" and headers["Authorization"] == "Bearer s3cret"
    assert body == {"text": "a", "text_pair": "b", "return": ["attributions"]}  # json: the server's default format
    assert isinstance(result, GradientsResult) and result.relative_delta == 0.0
    with pytest.raises(AttributeError, match="tensors=True"):
        result.tensors


def test_no_text_asks_for_the_models_details():
    details = (200, {"model": {"name": "m-gradients"}})
    with Scripted([details]) as server, Client(server.url) as client:
        g, a = client.gradients("m-gradients"), client.attention("m-attention")
        assert client.explain("m-gradients", {}).model == g.model
    assert [body for _, _, body in server.seen] == [{}, {}, {}]
    assert isinstance(g, GradientsResult) and isinstance(a, AttentionResult)
    with pytest.raises(AttributeError, match="model's details only"):
        a.attention


def test_the_async_client_resends_the_same_way():
    async def main():
        async with AsyncClient(server.url, backoff=0.01) as client:
            result = await client.attention("m-attention", "a")
            return result, client.last_sends

    with Scripted([LOST, BUSY, OK]) as server:
        result, sends = asyncio.run(main())
    assert isinstance(result, AttentionResult) and sends == 3


# --- typed results locally (the notebook API answers with the same types) ------------------------


def test_local_calls_answer_with_the_typed_results(tiny_model_dir):
    loaded = load_model(tiny_model_dir("bert", classifier=True), "tiny")
    a = explain_attention(loaded, TEXT, layers=[0])
    assert isinstance(a, AttentionResult) and a.attention.dtype == np.float32
    assert np.array_equal(a.attention, a["attention"]["data"]) and a.layers == [0]
    g = explain_gradients(loaded, TEXT, n_steps=8)
    assert isinstance(g, GradientsResult) and g.attributions.shape == (len(g.tokens),)
    assert g.relative_delta == abs(g.convergence_delta) / abs(g["target"]["score"] - g["baseline"]["score"])
    assert not isinstance(explain_gradients(loaded, TEXT, n_steps=8, format="npz"), GradientsResult)  # as before
    assert json.loads(json.dumps(g))["tokens"] == g.tokens  # still the plain response


def test_results_draw_themselves_when_the_views_exist(tmp_path):
    views = pytest.importorskip("exformer.client.views")
    result = AttentionResult(TINY_ATTENTION)
    assert result.save_html(tmp_path / "a.html").read_text() == views.document("attention", result)
    html = result._repr_html_()
    assert isinstance(html, str) and "exformer attention view" in html  # views.notebook's (its ids vary)


# --- against the real TorchServe ------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(torchserve):
    with Client(torchserve.inference, management_url=torchserve.management) as client:
        yield client


def test_the_servers_4xx_is_a_typed_request_error(client):
    with pytest.raises(RequestError) as caught:
        client.attention("minilm-attention", TEXT, layers=[99])
    assert (caught.value.code, caught.value.field) == (400, "layers")
    assert caught.value.message == "layers: [99] out of range: this model has layers 0..5"
    with pytest.raises(RequestError) as caught:
        client.gradients("sentiment-gradients", TEXT, n_step=8)
    assert caught.value.field == "n_step" and str(caught.value) == "n_step: unknown field; did you mean 'n_steps'?"
    with pytest.raises(RequestError) as caught:  # TorchServe's own 4xx: no field
        client.attention("no-such-attention", TEXT)
    assert caught.value.code == 404 and caught.value.field is None and "no-such-attention" in caught.value.message
    assert client.last_sends == 1


def test_attention_decodes_float16_and_json_alike(client):
    a16 = client.attention("minilm-attention", TEXT)
    a32 = client.attention("minilm-attention", TEXT, encoding="json")
    assert a16["attention"]["encoding"] == "float16-base64" and a32["attention"]["encoding"] == "json"
    n = len(a16.tokens)
    assert a16.attention.shape == a32.attention.shape == (6, 12, n, n)
    assert a16.attention.dtype == a32.attention.dtype == np.float32
    np.testing.assert_allclose(a16.attention, a32.attention, rtol=2**-11, atol=2**-24)  # float16's rounding
    np.testing.assert_allclose(a32.attention.sum(-1), 1, rtol=1e-5)
    assert a16.layers == list(range(6)) and a16.model["name"] == "minilm-attention" and not a16.truncated
    assert client.attention("minilm-attention").model == a16.model  # no text: the details
    some = client.attention("sentiment-attention", TEXT, text_pair="It sat.", layers=[5], heads=[0, 3])
    assert some.attention.shape[:2] == (1, 2) and some.prediction["label"] in some.model["labels"]


def test_gradients_summary_and_full_tensors(client):
    g = client.gradients("sentiment-gradients", REVIEW, n_steps=8)
    n = len(g.tokens)
    assert g.attributions.shape == g.normalized.shape == (n,)
    assert g.alphas.shape == g.step_sizes.shape == g.path_scores.shape == (8,)
    assert g.target["label"] == g.prediction["label"] == "positive" and math.isfinite(g.relative_delta)
    with pytest.raises(AttributeError, match="tensors=True"):
        g.tensors
    full = client.gradients("sentiment-gradients", REVIEW, n_steps=8, tensors=True)
    t = full.tensors
    assert t["integrated_gradients"].shape == (n, 384)
    assert t["intermediate_gradients"].shape == t["intermediates"].shape == (8, n, 384)
    assert t["step_sizes"].shape == (8,)
    np.testing.assert_allclose(t["integrated_gradients"].sum(-1), g.attributions, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(full.attributions, g.attributions, rtol=1e-6)
    assert full.convergence_delta == pytest.approx(g.convergence_delta, abs=1e-6)


def test_causal_lm_gradients_of_a_chosen_next_token(client):
    g = client.gradients("smollm2-gradients", "The capital of France is", target=" Paris", n_steps=4)
    assert g.target["text"] == " Paris" and g["score"] == "probability"
    assert g.attributions.shape == (len(g.tokens),) and g.prediction["next_tokens"]


def test_the_async_client_against_torchserve(torchserve):
    async def main():
        async with AsyncClient(torchserve.inference) as client:
            texts = [TEXT, REVIEW, "Short."]
            answers = await asyncio.gather(
                *(client.attention("minilm-attention", t, layers=[0]) for t in texts),
                client.gradients("sentiment-gradients", REVIEW, n_steps=4),
            )
            return answers, await client.models()

    (*attention, gradients), models = asyncio.run(main())
    assert [a.attention.shape[:2] for a in attention] == [(1, 12)] * 3
    assert gradients.attributions.shape == (len(gradients.tokens),)
    assert DEFAULT_MODELS <= {m.name for m in models}


def test_models_lists_the_defaults_with_ready_workers(torchserve):
    served = {m.name: m for m in Client(torchserve.inference).models()}  # management: inference port + 1
    assert DEFAULT_MODELS <= set(served)
    for name in DEFAULT_MODELS:
        assert served[name].handler == name.rsplit("-", 1)[1]
        assert served[name].ready >= 1 and served[name].workers >= served[name].ready


def _batches(torchserve, model) -> int:
    return len(re.findall(rf"-{model}_[^ ]* MODEL_LOG - batch of", torchserve.model_log()))


def test_a_request_whose_worker_is_killed_is_resent_and_answered(torchserve, client):
    """TorchServe answers the request on a killed worker 500 "Worker died."; the client sends it
    again, it waits in TorchServe's queue for the replacement worker, and comes back right."""
    model = "sentiment-gradients"
    scale(torchserve, model, 1)
    body = {"text": " ".join([REVIEW] * 4), "n_steps": 96}  # ~40 tokens: a few seconds per send
    expected = client.gradients(model, **body)
    seen = []
    for _ in range(4):  # a kill can miss (the answer came first); a few tries find a resend
        victims = [w["pid"] for w in torchserve.wait_ready(model)]
        before = _batches(torchserve, model)
        killer = Client(torchserve.inference, backoff=0.5)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            answer = pool.submit(killer.gradients, model, timeout=180, **body)
            deadline = time.time() + 20
            while _batches(torchserve, model) == before and time.time() < deadline:
                time.sleep(0.05)  # until a worker has the request
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
            result = answer.result(timeout=240)
        seen.append(killer.last_sends)
        np.testing.assert_allclose(result.attributions, expected.attributions, rtol=1e-4, atol=1e-7)
        assert result.target["label"] == expected.target["label"]
        assert result.target["score"] == pytest.approx(expected.target["score"], rel=1e-5)
        if killer.last_sends > 1:
            break
    print(f"\nsends per call while its worker was killed: {seen}")
    assert seen[-1] == 2, seen
    torchserve.wait_ready(model)
