"""The attention contract through a real TorchServe: the documented curl, bad input, batching."""

import concurrent.futures
import re

import pytest

CURL_BODY = {"text": "The cat sat on the mat."}


def test_the_readme_curl_returns_the_contract(torchserve):
    r = torchserve.post("minilm-attention", CURL_BODY)
    assert r.status == 200 and r.headers["content-type"].startswith("application/json")
    out = r.json()
    assert out["model"]["name"] == "minilm-attention" and out["model"]["kind"] == "bidirectional"
    assert out["model"]["n_layers"] == 6 and out["model"]["n_heads"] == 12
    assert out["model"]["predictions"] is None  # a bare encoder: no invented predictions
    texts = [t["text"] for t in out["tokens"]]
    assert texts == ["[CLS]", "the", "cat", "sat", "on", "the", "mat", ".", "[SEP]"]
    assert out["tokens"][2]["start"] == 4 and out["tokens"][2]["end"] == 7
    assert out["attention"]["shape"] == [6, 12, 9, 9] and out["truncated"] is False


def test_causal_lm_gives_next_token_predictions(torchserve):
    out = torchserve.post(
        "smollm2-attention", {"text": "The capital of France is", "top_k": 3, "layers": [29], "heads": [0]}
    ).json()
    assert out["model"]["kind"] == "autoregressive" and out["model"]["predictions"] == "next-token"
    last = out["tokens"][-1]["predictions"]
    assert len(last) == 3 and last[0]["text"].strip() == "Paris"


def test_details_only_request(torchserve):
    out = torchserve.post("smollm2-attention", b"").json()
    assert set(out) == {"model"} and out["model"]["max_tokens"] == 2048  # deploy/smollm2-attention.yaml


def test_long_input_says_truncated(torchserve):
    out = torchserve.post(
        "minilm-attention", {"text": "word " * 600, "layers": [0], "heads": [0], "encoding": "float16-base64"}
    ).json()
    assert out["truncated"] is True and len(out["tokens"]) == 512
    assert out["n_tokens_dropped"] == out["n_tokens_input"] - 512


def long_prompt(n_words: int) -> str:
    return " ".join(["word"] * n_words)


def test_a_long_prompt_is_answered_sparse_with_rollout_and_says_what_each_row_kept(torchserve):
    """Past the 512 tokens this archive once served: one map per layer (mean of the heads), the
    rollout, each as the 32 largest values of every row, in float16: every row's mass is
    accounted for (kept + rest) and the response validates against the contract."""
    import numpy as np

    from exformer.client.results import AttentionResult
    from exformer.contract import AttentionResponse

    body = {
        "text": long_prompt(640),
        "heads": "mean",
        "rollout": True,
        "top_k_per_row": 32,
        "encoding": "float16-base64",
        "layers": [0, 15, 29],
        "top_k": 1,
    }
    r = torchserve.post("smollm2-attention", body)
    assert r.status == 200, r.body[:300]
    AttentionResponse.model_validate_json(r.body)
    out = AttentionResult(r.json())
    n = len(out["tokens"])
    assert n > 512 and not out["truncated"]
    for key, shape in (("attention", [3, 1, n, n]), ("rollout", [3, n, n])):
        block = out[key]
        assert block["encoding"] == "topk-per-row" and block["shape"] == shape and block["k"] == 32
        rows = out.attention_rows if key == "attention" else out.rollout_rows
        np.testing.assert_allclose(rows["kept"] + rows["rest"], 1.0, atol=2e-3)  # float16 on the wire
        assert 0 < block["min_kept_fraction"] <= 1
    assert out["attention"]["aggregate"] == "mean" and out["attention"]["columns"]["dtype"] == "uint16"
    assert not np.triu(out.rollout, k=1).any()  # causal: nothing flows from later tokens


def test_full_attention_of_a_long_prompt_is_a_413_naming_what_fits(torchserve):
    r = torchserve.post("smollm2-attention", {"text": long_prompt(2000), "encoding": "float16-base64"})
    assert r.status == 413, r.body[:300]
    error = r.json()
    assert error["field"] == "attention"
    assert '"heads": "mean"' in error["message"] and '"top_k_per_row": 32' in error["message"]


BAD = [
    ("not json", b"{not json", "application/json", 400, "body"),
    ("json not an object", b"[1, 2]", "application/json", 400, "body"),
    ("nested 50,000 deep", b"[" * 50_000 + b"]" * 50_000, "application/json", 400, "body"),
    ("negative mask index", {"text": "a b", "mask": [-1]}, "application/json", 400, "mask"),
    ("bool as an integer", {"text": "a", "top_k": True}, "application/json", 400, "top_k"),
    ("missing text", {"layers": [0]}, "application/json", 400, "text"),
    ("empty text", {"text": ""}, "application/json", 400, "text"),
    ("text not a string", {"text": 42}, "application/json", 400, "text"),
    ("unknown field", {"text": "a", "layer": [0]}, "application/json", 400, "layer"),
    ("layer out of range", {"text": "a", "layers": [6]}, "application/json", 400, "layers"),
    ("heads wrong type", {"text": "a", "heads": "0"}, "application/json", 400, "heads"),
    ("mask out of range", {"text": "a b", "mask": [40]}, "application/json", 400, "mask"),
    ("mask wrong type", {"text": "a b", "mask": [1.5]}, "application/json", 400, "mask"),
    ("top_k zero", {"text": "a", "top_k": 0}, "application/json", 400, "top_k"),
    ("top_k above vocabulary", {"text": "a", "top_k": 30523}, "application/json", 400, "top_k"),
    ("unknown encoding", {"text": "a", "encoding": "msgpack"}, "application/json", 400, "encoding"),
    ("unknown head aggregate", {"text": "a", "heads": "median"}, "application/json", 400, "heads"),
    ("top_k_per_row zero", {"text": "a", "top_k_per_row": 0}, "application/json", 400, "top_k_per_row"),
    ("rollout not a flag", {"text": "a", "rollout": "yes"}, "application/json", 400, "rollout"),
    ("non-ASCII value echoed", {"text": "a", "heads": "tête"}, "application/json", 400, "heads"),
    ("long value echoed (cut with an ellipsis)", {"text": "a", "layers": "x" * 200}, "application/json", 400, "layers"),
    ("absurd text", {"text": "a" * 100_001}, "application/json", 413, "text"),
    ("form-encoded", b'{"text": "salt & pepper"}', "application/x-www-form-urlencoded", 415, "Content-Type"),
    ("text/plain (a browser's simple request)", {"text": "a"}, "text/plain", 415, "Content-Type"),
]


@pytest.mark.parametrize("name,body,content_type,code,field", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_4xx_json_naming_the_field(torchserve, name, body, content_type, code, field):
    r = torchserve.post("minilm-attention", body, content_type=content_type)
    assert r.status == code, r.body[:300]
    error = r.json()
    assert error["code"] == code and error["field"] == field
    assert error["message"].startswith(field) and "Traceback" not in error["message"]


def test_a_body_past_our_text_limit_is_a_413_json_naming_text(torchserve):
    r = torchserve.post("minilm-attention", {"text": "a" * 1_500_000})
    assert r.status == 413 and r.json()["field"] == "text"


def test_a_body_past_max_request_size_is_refused_by_torchserve_with_413(torchserve):
    """Past config.properties' max_request_size TorchServe's Netty answers 413 itself,
    before any handler runs (and without a body); the documentation says so."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(torchserve.inference)
    body = b'{"text": "' + b"a" * 3_000_000 + b'"}'
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(
            b"POST /predictions/minilm-attention HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        try:
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it may stop reading once it has decided
        status_line = sock.recv(200).split(b"\r\n")[0]
    assert status_line.startswith(b"HTTP/1.1 413")


def test_the_same_worker_survives_the_bad_input_table(torchserve):
    before = [w["pid"] for w in torchserve.workers("minilm-attention")]
    for _, body, content_type, _, _ in BAD:
        torchserve.post("minilm-attention", body, content_type=content_type)
    assert torchserve.post("minilm-attention", CURL_BODY).status == 200
    assert [w["pid"] for w in torchserve.workers("minilm-attention")] == before


def test_curl_d_without_content_type_is_refused_with_the_fix(torchserve):
    r = torchserve.post(
        "minilm-attention", b'{"text": "The cat sat."}', content_type="application/x-www-form-urlencoded"
    )
    assert r.status == 415 and r.json()["type"] == "UnsupportedMediaType"
    assert "-H 'Content-Type: application/json'" in r.json()["message"]


def test_a_batch_of_different_lengths_is_answered_request_by_request(torchserve):
    bodies = [
        {"text": "short"},
        {"text": "a somewhat longer sentence than that"},
        {"text": "bad", "layers": [99]},
        {"text": "medium length one", "text_pair": "and a pair"},
    ]
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda b: torchserve.post("tiny-batch-attention", b), bodies))
    assert [r.status for r in responses] == [200, 200, 400, 200]
    assert responses[2].json()["field"] == "layers"
    for body, r in zip(bodies, responses):
        if r.status == 200:
            tokens = r.json()["tokens"]
            assert r.json()["attention"]["shape"][-1] == len(tokens)
            assert tokens[1]["surface"].lower() == body["text"].split()[0]
    sizes = [
        int(n)
        for n in re.findall(r"-tiny-batch-attention_[^ ]* MODEL_LOG - batch of (\d+) request", torchserve.model_log())
    ]
    assert max(sizes) > 1, "the requests were never batched together"


def test_config_response_limit_equals_the_cores(torchserve):
    from exformer.contract.settings import MAX_RESPONSE_BYTES
    from support.torchserve import ROOT

    config = (ROOT / "config.properties").read_text()
    assert f"max_response_size={MAX_RESPONSE_BYTES}\n" in config
