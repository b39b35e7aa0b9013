"""Integrated and intermediate gradients through a real TorchServe, the old server's way too."""

import concurrent.futures
import gzip
import io
import json
import re

import numpy as np
import pytest
import torch

REVIEW = "A warm, funny and quietly moving film."


def test_old_server_request_with_sequence_returns_its_gzip(torchserve):
    r = torchserve.post("sentiment-gradients", {"sequence": REVIEW, "format": "torch-gzip"})
    assert r.status == 200 and r.headers["content-type"] == "application/gzip"
    saved = torch.load(io.BytesIO(gzip.decompress(r.body)), weights_only=True)
    assert set(saved) == {"integrated_gradients", "intermediate_gradients", "step_sizes", "intermediates"}
    n_tokens = saved["integrated_gradients"].shape[1]
    assert saved["integrated_gradients"].shape == (1, n_tokens, 384)
    assert saved["intermediate_gradients"].shape == saved["intermediates"].shape == (50, n_tokens, 384)
    assert saved["step_sizes"].shape == (50,)


def test_json_summary_explains_the_prediction(torchserve):
    r = torchserve.post("sentiment-gradients", {"text": REVIEW, "baseline": "pad", "n_steps": 50})
    assert r.status == 200
    out = r.json()
    assert out["prediction"]["label"] == "positive" and out["target"]["label"] == "positive"
    gap = out["target"]["score"] - out["baseline"]["score"]
    assert abs(out["convergence_delta"]) < 0.01 * abs(gap)
    assert len(out["attributions"]["raw"]) == len(out["tokens"])
    assert len(out["path_scores"]) == len(out["alphas"]) == len(out["step_sizes"]) == 50


def test_npz_download_round_trips_to_the_json_numbers(torchserve):
    body = {"text": REVIEW, "target": "negative", "baseline": "zero", "n_steps": 20}
    as_json = torchserve.post("sentiment-gradients", body).json()
    npz = np.load(io.BytesIO(torchserve.post("sentiment-gradients", {**body, "format": "npz"}).body))
    np.testing.assert_allclose(npz["integrated_gradients"][0].sum(-1), as_json["attributions"]["raw"], rtol=1e-5)
    assert json.loads(str(npz["summary"]))["target"]["label"] == "negative"


def test_explanations_endpoint_answers_with_the_json_summary(torchserve):
    r = torchserve.post("sentiment-gradients", {"text": REVIEW, "n_steps": 10, "format": "npz"}, path="explanations")
    assert r.status == 200 and "convergence_delta" in r.json()


def test_causal_lm_attributes_a_next_token(torchserve):
    out = torchserve.post("smollm2-gradients", {"text": "The capital of France is", "n_steps": 8}).json()
    assert out["target"]["text"].strip() == "Paris"
    assert len(out["attributions"]["raw"]) == len(out["tokens"])


BAD = [
    ({"text": REVIEW, "baseline": "ones"}, 400, "baseline"),
    ({"text": REVIEW, "method": "simpson"}, 400, "method"),
    ({"text": REVIEW, "format": "pickle"}, 400, "format"),
    ({"text": REVIEW, "return": ["everything"]}, 400, "return"),
    ({"text": REVIEW, "target": 2}, 400, "target"),
    ({"text": REVIEW, "target": "neutral"}, 400, "target"),
    ({"text": REVIEW, "n_steps": 0}, 400, "n_steps"),
    ({"text": REVIEW, "n_steps": 2.5}, 400, "n_steps"),
    ({"text": REVIEW, "n_steps": 100_000}, 400, "n_steps"),
    ({"text": REVIEW, "seed": "x"}, 400, "seed"),
    ({"text": ""}, 400, "text"),
    ({"txt": REVIEW}, 400, "txt"),
    ({"n_steps": 8}, 400, "text"),
    ({"text": None}, 400, "text"),  # a client's unset variable: not the details request
    ({"sequence": None}, 400, "sequence"),
    ({"text": REVIEW, "baseline": None}, 400, "baseline"),  # not silently the default
    ({"text": REVIEW, "method": None}, 400, "method"),
    ({"text": "word " * 500, "n_steps": 500, "format": "npz"}, 413, None),
]


@pytest.mark.parametrize("body,code,field", BAD, ids=[f"{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_bad_gradients_request_is_a_4xx_naming_the_field(torchserve, body, code, field):
    r = torchserve.post("sentiment-gradients", body)
    assert r.status == code, r.body[:300]
    error = r.json()
    assert error["code"] == code
    if field:
        assert error["field"] == field and error["message"].startswith(field)


def test_the_gradients_worker_survives_the_bad_input_table(torchserve):
    before = [w["pid"] for w in torchserve.workers("sentiment-gradients")]
    for body, _, _ in BAD:
        torchserve.post("sentiment-gradients", body)
    assert torchserve.post("sentiment-gradients", {"text": REVIEW, "n_steps": 4}).status == 200
    assert [w["pid"] for w in torchserve.workers("sentiment-gradients")] == before


def test_a_batch_shares_passes_and_answers_each_request_as_if_alone(torchserve, tiny_model_dir):
    from exformer import explain_gradients, load_model

    bodies = [
        {"text": "short one", "n_steps": 10},
        {"text": "a somewhat longer sentence than that one", "n_steps": 16, "baseline": "zero"},
        {"text": "bad", "n_steps": 0},
        {"text": "the third", "target": 0, "method": "riemann_trapezoid", "n_steps": 7},
    ]
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda b: torchserve.post("tiny-batch-gradients", b), bodies))
    assert [r.status for r in responses] == [200, 200, 400, 200]
    assert responses[2].json()["field"] == "n_steps"
    sizes = [
        int(n)
        for n in re.findall(r"-tiny-batch-gradients_[^ ]* MODEL_LOG - batch of (\d+) request", torchserve.model_log())
    ]
    assert max(sizes) >= 3, "the requests were never batched together"
    loaded = load_model(tiny_model_dir("bert", classifier=True), "alone")
    for body, r in zip(bodies, responses):
        if r.status == 200:
            alone = explain_gradients(loaded, body)
            expected = np.array(alone["attributions"]["raw"])
            got = np.array(r.json()["attributions"]["raw"])
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
