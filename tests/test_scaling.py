"""Live scaling and worker death under a stream of requests, against the real TorchServe."""

import os
import signal
import threading
import time

import pytest

BODIES = {
    "minilm-attention": {"text": "Scaling must not drop a single request.", "layers": [0], "heads": [0]},
    "sentiment-gradients": {"text": "Scaling must not drop a single request.", "n_steps": 8},
    "sentiment-attention": {"text": "Scaling must not drop a single request.", "layers": [0], "heads": [0]},
}
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

    def __init__(self, torchserve, model, clients=3, resend=True, body=None, timeout=60):
        self.torchserve, self.model, self.resend, self.timeout = torchserve, model, resend, timeout
        self.body = body or BODIES[model]
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


@pytest.mark.parametrize("model", ["minilm-attention", "sentiment-gradients"])
def test_scaling_1_2_1_while_streaming_fails_no_request(torchserve, model):
    """Scale-down stops a worker at once (TorchServe 0.12): the request it was running is
    answered 500 "Worker died." (never left hanging with batchSize 1) and sent again."""
    scale(torchserve, model, 1)
    with Stream(torchserve, model) as stream:
        time.sleep(1)
        assert len(scale(torchserve, model, 2)) == 2
        time.sleep(2)
        served_by = {w["pid"] for w in torchserve.workers(model)}
        assert len(scale(torchserve, model, 1)) == 1
        time.sleep(1)
    statuses = [s for _, s, _ in stream.answers]
    resent = sum(sends > 1 for _, _, sends in stream.answers)
    print(f"\n{model}: {len(statuses)} requests through 1 → 2 → 1 workers, {resent} sent again")
    assert len(statuses) > 10 and set(statuses) == {200}, statuses
    assert resent <= 1, "more than the one request in flight on the stopped worker was lost"
    assert len(served_by) == 2


def test_a_killed_worker_is_replaced_and_no_request_hangs(torchserve):
    model = "sentiment-attention"
    victim = torchserve.wait_ready(model)[0]["pid"]
    with Stream(torchserve, model, resend=False) as stream:
        time.sleep(1)
        killed_at = time.time()
        os.kill(victim, signal.SIGKILL)
        deadline = killed_at + 15
        while time.time() < deadline:
            ready = [w for w in torchserve.workers(model) if w["status"] == "READY" and w["pid"] != victim]
            if ready:
                break
            time.sleep(0.2)
        back_after = time.time() - killed_at
        assert ready, "no ready worker 15 s after the kill"
        time.sleep(1)
    print(f"\nworker {victim} killed; a new one was ready after {back_after:.1f} s")
    failed = [s for _, s, _ in stream.answers if s != 200]
    assert all(isinstance(s, int) and 500 <= s < 600 for s in failed), failed  # answered, not hung
    assert len(failed) <= 1, f"more than the request in flight failed: {failed}"  # batchSize 1
    after = [s for t, s, _ in stream.answers if t > killed_at + back_after + 0.5]
    assert after and set(after) == {200}


def test_unregistering_and_registering_are_refused_by_default(torchserve):
    """enable_model_api=false (README, Security): the served set changes only by restart."""
    assert torchserve.manage("DELETE", "models/minilm-attention").status == 405
    assert torchserve.manage("POST", "models?url=minilm-attention.mar").status == 405
    assert torchserve.post("minilm-attention", BODIES["minilm-attention"]).status == 200
