"""Attention rollout, heads aggregated over, and sparse rows, checked in-process on tiny random
models against NumPy references computed from the models' own `output_attentions`."""

import numpy as np
import pytest
import torch

from exformer import explain_attention
from exformer.client.results import AttentionResult
from exformer.contract import AttentionRequest, AttentionResponse
from exformer.contract.errors import RequestError
from exformer.contract.settings import Settings
from exformer.core.attention import lower_triangular_matmul
from exformer.core.loading import load_model
from exformer.explain import parse_request
from exformer.explain.attention import SUGGESTED_TOP_K_PER_ROW, attention_response
from exformer.explain.encoding import json_bytes
from tiny_models import FAMILIES

TEXT = "The cat sat on the mat, and the dog barked at the moon."


DEFAULT_SETTINGS = Settings()


@pytest.fixture(scope="module")
def loaded_models(tiny_model_dir):
    cache = {}

    def get(family, settings=DEFAULT_SETTINGS):
        if (family, settings) not in cache:
            cache[family, settings] = load_model(tiny_model_dir(family), family, settings)
        return cache[family, settings]

    return get


def explain(loaded, body) -> AttentionResult:
    request = parse_request(loaded, AttentionRequest, body)
    if isinstance(request, RequestError):
        raise request
    return AttentionResult(attention_response(loaded, request))


def own_attentions(loaded, text=TEXT) -> np.ndarray:
    """[L, H, T, T] float64 from the model's own forward with output_attentions."""
    enc = loaded.tokenizer(text, return_tensors="pt")
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        out = loaded.model(**inputs, output_attentions=True)
    return torch.stack([a[0] for a in out.attentions]).double().numpy()


def numpy_rollout(attentions: np.ndarray) -> np.ndarray:
    """Abnar & Zuidema (2020), eq. as in their code: Ã = 0.5·mean_h A + 0.5·I, rows
    normalised, R_l = Ã_l · R_(l-1), R_(-1) = I."""
    n = attentions.shape[-1]
    rolled, r = [], np.eye(n)
    for a in attentions:
        a_tilde = 0.5 * a.mean(axis=0) + 0.5 * np.eye(n)
        a_tilde /= a_tilde.sum(axis=-1, keepdims=True)
        r = a_tilde @ r
        rolled.append(r)
    return np.stack(rolled)


def served_json(result) -> AttentionResponse:
    """What the wire would carry, validated against the contract."""
    return AttentionResponse.model_validate_json(json_bytes(dict(result)))


# --- rollout ----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_rollout_equals_the_numpy_reference(loaded_models, family):
    loaded = loaded_models(family)
    out = explain(loaded, {"text": TEXT, "rollout": True})
    expected = numpy_rollout(own_attentions(loaded))
    assert out["rollout"]["shape"] == list(expected.shape) and out["rollout"]["layers"] == [0, 1]
    np.testing.assert_allclose(out.rollout, expected, rtol=1e-5, atol=1e-6)
    served_json(out)


def test_rollout_rows_sum_to_one_and_a_causal_rollout_is_lower_triangular(loaded_models):
    rollout = explain(loaded_models("llama"), {"text": TEXT, "rollout": "only"}).rollout
    np.testing.assert_allclose(rollout.sum(-1), 1.0, atol=1e-5)
    assert not np.triu(rollout, k=1).any()


def test_rollout_of_chosen_layers_is_those_layers_of_the_whole_rollout(loaded_models):
    loaded = loaded_models("bert")
    whole = explain(loaded, {"text": TEXT, "rollout": "only"}).rollout
    out = explain(loaded, {"text": TEXT, "rollout": True, "layers": [1]})
    assert out["rollout"]["layers"] == [1] and out["attention"]["layers"] == [1]
    np.testing.assert_array_equal(out.rollout, whole[[1]])


def test_rollout_only_leaves_attention_out(loaded_models):
    out = explain(loaded_models("gpt2"), {"text": TEXT, "rollout": "only"})
    assert "attention" not in out and "rollout" in out and out.layers == [0, 1]
    with pytest.raises(AttributeError, match="only"):
        out.attention
    served_json(out)


def test_rollout_follows_the_requests_encoding(loaded_models):
    loaded = loaded_models("llama")
    exact = explain(loaded, {"text": TEXT, "rollout": "only"}).rollout
    half = explain(loaded, {"text": TEXT, "rollout": "only", "encoding": "float16-base64"})
    assert half["rollout"]["encoding"] == "float16-base64"
    np.testing.assert_allclose(half.rollout, exact, atol=1e-3, rtol=1e-3)


def test_rollout_with_masked_tokens_is_the_rollout_of_the_masked_input(loaded_models):
    loaded = loaded_models("bert")
    out = explain(loaded, {"text": TEXT, "mask": [2], "rollout": True})
    np.testing.assert_allclose(out.rollout, numpy_rollout(out.attention.astype(np.float64)), rtol=1e-5, atol=1e-6)
    assert not np.allclose(out.rollout, explain(loaded, {"text": TEXT, "rollout": True}).rollout)


def test_block_triangular_product_equals_the_full_product():
    torch.manual_seed(0)
    a, b = torch.rand(300, 300).tril(), torch.rand(300, 300).tril()
    torch.testing.assert_close(lower_triangular_matmul(a, b, block=64), a @ b, rtol=1e-5, atol=1e-5)


# --- heads aggregated ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["bert", "llama", "xlnet"])
@pytest.mark.parametrize("aggregate", ["mean", "max"])
def test_heads_mean_and_max_aggregate_every_head_of_each_layer(loaded_models, family, aggregate):
    loaded = loaded_models(family)
    out = explain(loaded, {"text": TEXT, "heads": aggregate})
    full = own_attentions(loaded)
    expected = full.mean(axis=1, keepdims=True) if aggregate == "mean" else full.max(axis=1, keepdims=True)
    block = out["attention"]
    assert block["aggregate"] == aggregate and block["heads"] == list(range(4)) and block["shape"][1] == 1
    np.testing.assert_allclose(out.attention, expected, rtol=1e-6, atol=1e-7)
    served_json(out)


def test_dense_answers_say_they_are_not_aggregated(loaded_models):
    assert explain(loaded_models("bert"), {"text": TEXT, "heads": [1]})["attention"]["aggregate"] is None


# --- sparse rows --------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["json", "float16-base64"])
def test_top_k_per_row_sends_the_largest_values_their_columns_and_the_mass_left(loaded_models, encoding):
    loaded = loaded_models("bert")
    k = 3
    out = explain(loaded, {"text": TEXT, "top_k_per_row": k, "encoding": encoding})
    block = out["attention"]
    full = own_attentions(loaded)
    assert block["encoding"] == "topk-per-row" and block["k"] == k and block["shape"] == list(full.shape)
    assert block["values"]["encoding"] == encoding
    assert block["columns"]["encoding"] == ("json" if encoding == "json" else "base64")
    rows = out.attention_rows
    tol = dict(rtol=1e-6, atol=1e-7) if encoding == "json" else dict(rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(rows["values"], -np.sort(-full, axis=-1)[..., :k], **tol)
    np.testing.assert_allclose(np.take_along_axis(full, rows["columns"], axis=-1), rows["values"], **tol)
    np.testing.assert_allclose(rows["kept"], rows["values"].sum(-1), **tol)
    np.testing.assert_allclose(rows["kept"] + rows["rest"], full.sum(-1), **tol)  # every row's mass accounted for
    fraction = (rows["kept"] / (rows["kept"] + rows["rest"])).min()
    assert block["min_kept_fraction"] == pytest.approx(fraction, abs=2e-3)
    served_json(out)


def test_top_k_per_row_past_the_length_is_every_column_and_decodes_to_the_dense_answer(loaded_models):
    loaded = loaded_models("llama")
    dense = explain(loaded, {"text": TEXT, "rollout": True})
    out = explain(loaded, {"text": TEXT, "rollout": True, "top_k_per_row": 10_000})
    n = len(out["tokens"])
    assert out["attention"]["k"] == out["rollout"]["k"] == n
    np.testing.assert_array_equal(out.attention, dense.attention)
    np.testing.assert_array_equal(out.rollout, dense.rollout)
    assert out["attention"]["min_kept_fraction"] == pytest.approx(1.0, abs=1e-6)


def test_sparse_rollout_of_mean_heads_together(loaded_models):
    loaded = loaded_models("gpt2")
    out = explain(
        loaded, {"text": TEXT, "heads": "mean", "rollout": True, "top_k_per_row": 4, "encoding": "float16-base64"}
    )
    rows = out.rollout_rows
    expected = numpy_rollout(own_attentions(loaded))
    np.testing.assert_allclose(rows["values"], -np.sort(-expected, axis=-1)[..., :4], atol=1e-3, rtol=1e-3)
    assert out.attention_rows["values"].shape == (2, 1, len(out["tokens"]), 4)
    served_json(out)


# --- sizes and validation -----------------------------------------------------------------------


def test_a_response_too_large_names_the_options_that_shrink_it(loaded_models):
    loaded = loaded_models("bert", Settings(max_response_bytes=400_000))
    text = " ".join(["word"] * 100)
    with pytest.raises(RequestError) as err:
        explain(loaded, {"text": text, "rollout": True})
    message = err.value.message
    assert err.value.code == 413 and err.value.field == "attention"
    for option in ('"heads": "mean"', '"encoding": "float16-base64"', f'"top_k_per_row": {SUGGESTED_TOP_K_PER_ROW}'):
        assert option in message
    # what it suggests is answered
    out = explain(
        loaded,
        {
            "text": text,
            "rollout": True,
            "heads": "mean",
            "encoding": "float16-base64",
            "top_k_per_row": SUGGESTED_TOP_K_PER_ROW,
        },
    )
    assert len(json_bytes(dict(out))) < 400_000


def test_the_size_bound_holds_for_every_form(loaded_models):
    from exformer.explain.attention import plan_of, response_bytes

    loaded = loaded_models("llama")
    text = " ".join(["word"] * 60)
    for body in (
        {},
        {"heads": "max"},
        {"rollout": True},
        {"rollout": "only", "top_k_per_row": 5},
        {"top_k_per_row": 7, "encoding": "float16-base64"},
        {"heads": [0, 2], "rollout": True},
    ):
        body = {"text": text, **body}
        request = parse_request(loaded, AttentionRequest, body)
        out = attention_response(loaded, request)
        bound = response_bytes(plan_of(loaded, request), request.encoding, len(out["tokens"]), 5)
        assert len(json_bytes(out)) <= bound, body


BAD = [
    ({"heads": "avg"}, "heads", '"mean"'),
    ({"heads": []}, "heads", "empty"),
    ({"top_k_per_row": 0}, "top_k_per_row", "greater than or equal to 1"),
    ({"top_k_per_row": True}, "top_k_per_row", "integer"),
    ({"rollout": "yes"}, "rollout", ""),
    ({"rollout": 1}, "rollout", ""),
    ({"rollout": "only", "heads": "mean"}, "heads", "rollout"),
]


@pytest.mark.parametrize("body,field,words", BAD, ids=[str(b[0]) for b in BAD])
def test_bad_new_fields_are_a_400_naming_the_field(loaded_models, body, field, words):
    with pytest.raises(RequestError) as err:
        explain(loaded_models("bert"), {"text": TEXT, **body})
    assert err.value.code == 400 and err.value.field == field and words in err.value.message


def test_the_python_api_takes_the_new_fields(tiny_model_dir, loaded_models):
    loaded = loaded_models("bert")
    out = explain_attention(loaded, TEXT, rollout=True, heads="mean")
    assert out.rollout.shape == (2, out.attention.shape[-1], out.attention.shape[-1]) and out.aggregate == "mean"
    assert "rollout=" in repr(out)


def test_threads_sharing_a_model_each_get_their_own_maps(loaded_models):
    from concurrent.futures import ThreadPoolExecutor

    loaded = loaded_models("gpt2")
    texts = [TEXT, "A short one.", TEXT + " Then it rained for a while.", "Another text entirely, longer."] * 2
    alone = [explain(loaded, {"text": t, "rollout": True, "heads": "mean"}) for t in texts]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda t: explain(loaded, {"text": t, "rollout": True, "heads": "mean"}), texts))
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a.attention, b.attention)
        np.testing.assert_array_equal(a.rollout, b.rollout)
