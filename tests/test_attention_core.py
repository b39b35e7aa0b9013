"""The attention contract, checked in-process on tiny random models of every family."""

import base64
import inspect

import numpy as np
import pytest
import torch

from exformer.contract import AttentionRequest
from exformer.contract.errors import RequestError
from exformer.contract.settings import Settings
from exformer.core.loading import load_model
from exformer.explain import parse_request
from exformer.explain.attention import attention_response
from tiny_models import FAMILIES

SETTINGS = Settings()
TEXT = "The cat sat on the mat, and the dog barked."


@pytest.fixture(scope="module")
def loaded_models(tiny_model_dir):
    cache = {}

    def get(family, settings=SETTINGS):
        key = (family, settings)
        if key not in cache:
            cache[key] = load_model(tiny_model_dir(family), family, settings)
        return cache[key]

    return get


def explain(loaded, body):
    request = parse_request(loaded, AttentionRequest, body)
    if isinstance(request, RequestError):
        raise request
    return attention_response(loaded, request)


def own_forward(loaded, text, text_pair=None, masked=()):
    enc = loaded.tokenizer(text, text_pair, return_tensors="pt")
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    if "token_type_ids" not in inspect.signature(loaded.model.forward).parameters:
        inputs.pop("token_type_ids", None)
    if masked:
        inputs["input_ids"][0, list(masked)] = loaded.tokenizer.mask_token_id
    with torch.no_grad():
        return loaded.model(**inputs, output_attentions=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_equals_the_models_own_output_attentions(loaded_models, family):
    loaded = loaded_models(family)
    out = explain(loaded, {"text": TEXT})
    own = torch.stack([a[0] for a in own_forward(loaded, TEXT).attentions])
    got = torch.tensor(out["attention"]["data"])
    assert got.shape == own.shape == tuple(out["attention"]["shape"])
    assert torch.equal(got, own.float())


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_rows_sum_to_one(loaded_models, family):
    out = explain(loaded_models(family), {"text": TEXT})
    rows = torch.tensor(out["attention"]["data"]).sum(-1)
    assert torch.allclose(rows, torch.ones_like(rows), atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_predictions_equal_the_models_logits(loaded_models, family):
    loaded = loaded_models(family)
    out = explain(loaded, {"text": TEXT, "top_k": 3})
    if loaded.head is None:
        assert out["model"]["predictions"] is None
        assert all(t["predictions"] is None for t in out["tokens"])
        return
    probs = torch.softmax(own_forward(loaded, TEXT).logits[0].float(), -1)
    for token in out["tokens"]:
        expected = probs[token["index"]].topk(3)
        assert [p["id"] for p in token["predictions"]] == expected.indices.tolist()
        assert [p["prob"] for p in token["predictions"]] == pytest.approx(expected.values.tolist(), rel=1e-6)


def test_kind_and_prediction_type_follow_the_architecture(loaded_models):
    assert explain(loaded_models("bert"), {})["model"]["kind"] == "bidirectional"
    assert explain(loaded_models("bert"), {})["model"]["predictions"] == "masked-token"
    assert explain(loaded_models("gpt2"), {})["model"]["kind"] == "autoregressive"
    assert explain(loaded_models("llama"), {})["model"]["predictions"] == "next-token"


def test_causal_attention_is_lower_triangular(loaded_models):
    att = torch.tensor(explain(loaded_models("llama"), {"text": TEXT})["attention"]["data"])
    assert torch.count_nonzero(torch.triu(att, diagonal=1)) == 0


def test_details_only_request_returns_the_model_block_alone(loaded_models):
    out = explain(loaded_models("bert"), {})
    assert set(out) == {"model"}
    assert out["model"]["n_layers"] == 2 and out["model"]["n_heads"] == 4
    assert out["model"]["max_tokens"] == 128


def test_tokens_carry_offsets_into_the_text_and_special_flags(loaded_models):
    out = explain(loaded_models("bert"), {"text": TEXT})
    tokens = out["tokens"]
    assert tokens[0]["special"] and tokens[0]["text"] == "[CLS]" and tokens[0]["start"] is None
    assert tokens[-1]["special"] and tokens[-1]["text"] == "[SEP]"
    for t in tokens[1:-1]:
        assert not t["special"]
        assert TEXT[t["start"] : t["end"]] == t["surface"]
        assert t["surface"].lower() == t["text"].removeprefix("##")


def test_text_pair_marks_segments_and_offsets_into_each_text(loaded_models):
    pair = "It was asleep."
    out = explain(loaded_models("bert"), {"text": TEXT, "text_pair": pair})
    second = [t for t in out["tokens"] if t["segment"] == 1]
    assert second and "".join(t["surface"] for t in second) == "Itwasasleep."
    assert all(pair[t["start"] : t["end"]] == t["surface"] for t in second)
    own = torch.stack([a[0] for a in own_forward(loaded_models("bert"), TEXT, pair).attentions])
    assert torch.equal(torch.tensor(out["attention"]["data"]), own)


def test_layers_and_heads_select_a_subset(loaded_models):
    loaded = loaded_models("bert")
    full = torch.tensor(explain(loaded, {"text": TEXT})["attention"]["data"])
    out = explain(loaded, {"text": TEXT, "layers": [1], "heads": [3, 0]})
    assert out["attention"]["layers"] == [1] and out["attention"]["heads"] == [3, 0]
    assert torch.equal(torch.tensor(out["attention"]["data"]), full[[1]][:, [3, 0]])


def test_masking_replaces_tokens_and_reruns_the_model(loaded_models):
    loaded = loaded_models("bert")
    out = explain(loaded, {"text": TEXT, "mask": [2], "top_k": 2})
    assert out["tokens"][2]["masked"] and not out["tokens"][1]["masked"]
    assert out["tokens"][2]["text"] == "cat"  # the row still says what was there
    own = own_forward(loaded, TEXT, masked=[2])
    assert torch.equal(torch.tensor(out["attention"]["data"]), torch.stack([a[0] for a in own.attentions]))
    expected = torch.softmax(own.logits[0, 2], -1).topk(2).indices.tolist()
    assert [p["id"] for p in out["tokens"][2]["predictions"]] == expected


def test_float16_base64_encodes_the_same_attention(loaded_models):
    loaded = loaded_models("bert")
    exact = np.array(explain(loaded, {"text": TEXT})["attention"]["data"], dtype=np.float32)
    out = explain(loaded, {"text": TEXT, "encoding": "float16-base64"})["attention"]
    assert out["dtype"] == "float16" and out["byteorder"] == "little"
    decoded = np.frombuffer(base64.b64decode(out["data"]), "<f2").reshape(out["shape"])
    np.testing.assert_allclose(decoded, exact, atol=1e-3, rtol=1e-3)


def test_long_input_is_truncated_and_says_how_much(loaded_models):
    loaded = loaded_models("bert")  # max_tokens 128
    long_text = " ".join(["word"] * 300)
    out = explain(loaded, {"text": long_text, "layers": [0], "heads": [0]})
    assert out["truncated"] is True
    assert len(out["tokens"]) == 128
    assert out["n_tokens_input"] == 302 and out["n_tokens_dropped"] == 302 - 128
    assert out["tokens"][-1]["special"]  # still ends with [SEP]


def test_short_input_is_not_truncated(loaded_models):
    out = explain(loaded_models("bert"), {"text": TEXT})
    assert out["truncated"] is False and out["n_tokens_dropped"] == 0


def test_configured_max_tokens_caps_below_the_model_limit(loaded_models):
    capped = loaded_models("gpt2", Settings(max_tokens=16))
    out = explain(capped, {"text": " ".join(["word"] * 40)})
    assert capped.max_tokens == 16 and len(out["tokens"]) == 16 and out["truncated"]


def test_a_response_too_large_is_refused_before_computing(loaded_models):
    loaded = loaded_models("bert", Settings(max_response_bytes=10_000))
    with pytest.raises(RequestError) as err:
        explain(loaded, {"text": " ".join(["word"] * 100)})
    assert err.value.code == 413 and "float16-base64" in err.value.message


def test_mask_beyond_the_tokens_is_a_400_naming_mask(loaded_models):
    with pytest.raises(RequestError) as err:
        explain(loaded_models("bert"), {"text": "hi", "mask": [7]})
    assert err.value.code == 400 and err.value.field == "mask"


def test_mask_on_a_model_without_mask_token_is_a_400(loaded_models):
    with pytest.raises(RequestError) as err:
        explain(loaded_models("gpt2"), {"text": "hi there", "mask": [0]})
    assert err.value.field == "mask" and "no mask token" in err.value.message


def test_classifier_attention_reports_its_prediction(tiny_model_dir):
    loaded = load_model(tiny_model_dir("bert", classifier=True), "cls")
    out = explain(loaded, {"text": TEXT})
    assert out["model"]["labels"] == ["negative", "positive"] and out["model"]["predictions"] is None
    assert set(out["prediction"]["probabilities"]) == {"negative", "positive"}
    assert sum(out["prediction"]["probabilities"].values()) == pytest.approx(1.0)
