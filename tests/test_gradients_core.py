"""The gradients core, in-process: one pass gives captum's integrated gradients and every
intermediate gradient; requests share chunks; the wire formats agree; bad requests are named.

The oracle is captum's LayerIntegratedGradients on model.get_input_embeddings(), with the
same F (softmax probability of the target), baseline, steps and method.
"""

import dataclasses
import gzip
import io
import json
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from captum.attr import LayerIntegratedGradients
from captum.attr._utils.approximation_methods import SUPPORTED_METHODS

from exformer.contract import BASELINES, FIXED_METHODS, GradientsRequest
from exformer.contract.errors import RequestError
from exformer.contract.settings import Settings
from exformer.core.loading import load_model
from exformer.core.tokens import encode
from exformer.explain import parse_request
from exformer.explain.dispatch import explain_batch

TEXT = "The cat sat on the mat."
TEXTS = ["Short one.", "A somewhat longer sentence about a cat on a mat, indeed.", "Middle length text here."]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine OpenMP threads
    spinning against other processes made this file 15x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


FLOAT32 = Settings(dtype="float32")  # compared with captum in float32, also where bf16 is native (auto)


@pytest.fixture(scope="module")
def load(tiny_model_dir):
    cache = {}

    def get(family: str, classifier: bool = True):
        if (family, classifier) not in cache:
            cache[family, classifier] = load_model(tiny_model_dir(family, classifier), family, FLOAT32)
        return cache[family, classifier]

    return get


def with_settings(loaded, **settings):
    """The same model served with other handler settings (an archive's `handler:` block)."""
    return dataclasses.replace(loaded, settings=Settings(**{"dtype": "float32", **settings}))


def request(loaded, body):
    """A body validated against the model; its RequestError raised."""
    parsed = parse_request(loaded, GradientsRequest, body)
    if isinstance(parsed, RequestError):
        raise parsed
    return parsed


def explain(loaded, **fields):
    return explain_batch(loaded, [request(loaded, {"text": TEXT, **fields})])[0]


def close(actual, expected, rtol=1e-5):
    """Equal within rtol of the largest magnitude (IG of tiny random models is ~1e-6)."""
    actual, expected = torch.as_tensor(actual).double(), torch.as_tensor(expected).double()
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * float(expected.abs().max()))


# --- the oracle ---------------------------------------------------------------------------------


@contextmanager
def extra_embedding_rows(embed, rows):
    """Give the embedding table extra rows (the old server's trick for zero/random baselines),
    so captum can reach any baseline through token ids; yields the first new id."""
    weight = embed.weight
    embed.weight = torch.nn.Parameter(torch.cat([weight, rows.to(weight)]), requires_grad=False)
    try:
        yield weight.shape[0]
    finally:
        embed.weight = weight


def captum_ig(loaded, result):
    request, model = result.request, loaded.model
    encoded = encode(loaded, request.text, request.text_pair)
    ids = encoded.inputs["input_ids"]
    names = [k for k in encoded.inputs if k != "input_ids"]
    extra = tuple(encoded.inputs[k] for k in names)
    target = result.summary["target"]["index"]
    embed = model.get_input_embeddings()
    # XLNet embeds time-first ids, which captum's layer hook cannot splice steps into;
    # for it the layer is an identity on the (same) embedding output, fed as inputs_embeds.
    probe = torch.nn.Identity() if loaded.config.model_type == "xlnet" else None

    def forward(input_ids, *rest):
        kwargs = dict(zip(names, rest))
        if probe is None:
            logits = model(input_ids=input_ids, **kwargs).logits
        else:
            logits = model(inputs_embeds=probe(embed(input_ids)), **kwargs).logits
        if loaded.head == "causal-lm":
            logits = logits[:, -1]
        return logits[:, target] if request.score == "logit" else logits.softmax(-1)[:, target]

    replace = torch.ones(ids.shape[1], dtype=torch.bool)
    if request.baseline_specials == "keep":
        replace = ~torch.tensor(encoded.special)
    tok = loaded.tokenizer
    token = {
        "pad": tok.pad_token_id,
        "unk": tok.unk_token_id,
        "mask": tok.mask_token_id,
        "period": tok.convert_tokens_to_ids("."),
    }
    t, e = ids.shape[1], embed.embedding_dim
    rows = {
        "zero": torch.zeros(1, e),
        "rand-norm": torch.randn((t, e), generator=torch.Generator().manual_seed(request.seed)),
        "rand-unif": torch.rand((t, e), generator=torch.Generator().manual_seed(request.seed)),
    }.get(request.baseline, torch.zeros(0, e))
    with extra_embedding_rows(embed, rows) as first_new:
        fill = token.get(request.baseline, first_new)
        new_ids = fill + (torch.arange(t) if len(rows) > 1 else torch.zeros(t, dtype=torch.long))
        baseline_ids = torch.where(replace, new_ids, ids[0])[None]
        lig = LayerIntegratedGradients(forward, probe or embed)
        return lig.attribute(
            ids, baseline_ids, additional_forward_args=extra, n_steps=request.n_steps, method=request.method
        )[0]


ORACLE_CASES = (
    [("bert", True, b, "keep", "gausslegendre") for b in BASELINES]
    + [("bert", True, b, "replace", "gausslegendre") for b in ("zero", "pad", "rand-norm")]
    + [("bert", True, "pad", "keep", m) for m in FIXED_METHODS if m != "gausslegendre"]
    + [
        (f, True, b, "keep", "gausslegendre")
        for f in ("roberta", "distilbert", "albert", "electra", "xlnet", "gpt2", "llama")
        for b in ("pad", "rand-unif")
    ]
    + [
        ("gpt2", False, "period", "keep", "riemann_trapezoid"),
        ("llama", False, "zero", "keep", "gausslegendre"),
        ("llama", False, "unk", "replace", "riemann_middle"),
    ]
)


@pytest.mark.parametrize("family,classifier,baseline,specials,method", ORACLE_CASES)
def test_integrated_gradients_equal_captum_layer_integrated_gradients(
    load, family, classifier, baseline, specials, method
):
    loaded = load(family, classifier)
    result = explain(loaded, baseline=baseline, baseline_specials=specials, method=method, n_steps=20, seed=3)
    close(result.path.integrated_gradients, captum_ig(loaded, result))


@pytest.mark.parametrize("family,classifier", [("bert", True), ("llama", False)])
def test_chunked_pass_equals_captum(load, family, classifier):
    loaded = load(family, classifier)
    result = explain(with_settings(loaded, internal_batch_size=3), baseline="rand-norm", n_steps=20)
    close(result.path.integrated_gradients, captum_ig(loaded, result))


def test_methods_are_captums():
    assert set(FIXED_METHODS) == set(SUPPORTED_METHODS)


# --- one pass: everything derives from the intermediate gradients -------------------------------


def test_weighted_sum_of_intermediate_gradients_is_the_integrated_gradients(load):
    loaded = load("bert")
    result = explain(loaded, baseline="pad", baseline_specials="replace", format="torch-gzip", n_steps=16)
    old = torch.load(io.BytesIO(gzip.decompress(result.body()[0])), weights_only=True)
    ids = encode(loaded, TEXT).inputs["input_ids"]
    embed = loaded.model.get_input_embeddings()
    with torch.no_grad():
        x, b = embed(ids)[0], embed(torch.full_like(ids, loaded.tokenizer.pad_token_id))[0]
    weighted = (old["intermediate_gradients"] * old["step_sizes"].view(-1, 1, 1)).sum(0)
    close(old["integrated_gradients"][0], weighted * (x - b), rtol=1e-6)
    alphas = torch.tensor(result.summary["alphas"], dtype=torch.float32)
    close(old["intermediates"], b + alphas.view(-1, 1, 1) * (x - b), rtol=1e-6)


def test_convergence_delta_is_sum_of_attributions_minus_score_difference(load):
    loaded = load("gpt2")
    summary = explain(loaded, baseline="pad", n_steps=50).summary
    gap = summary["target"]["score"] - summary["baseline"]["score"]
    assert summary["convergence_delta"] == pytest.approx(sum(summary["attributions"]["raw"]) - gap, abs=1e-7)
    assert abs(summary["convergence_delta"]) < 1e-3 * abs(gap) + 1e-6


def test_path_scores_run_from_baseline_score_to_input_score(load):
    summary = explain(load("gpt2"), method="riemann_trapezoid", n_steps=10).summary
    assert summary["path_scores"][0] == pytest.approx(summary["baseline"]["score"], abs=1e-6)
    assert summary["path_scores"][-1] == pytest.approx(summary["target"]["score"], abs=1e-6)
    assert len(summary["gradient_norms"]) == 10 and min(summary["gradient_norms"]) > 0


def test_special_tokens_keep_their_embedding_unless_replaced(load):
    loaded = load("bert")
    kept = explain(loaded, baseline="zero", n_steps=4)
    special = [t["special"] for t in kept.summary["tokens"]]
    assert special[0] and special[-1] and not any(special[1:-1])
    raw = kept.summary["attributions"]["raw"]
    assert raw[0] == 0 and raw[-1] == 0 and all(r != 0 for r in raw[1:-1])
    replaced = explain(loaded, baseline="zero", baseline_specials="replace", n_steps=4).summary
    assert replaced["attributions"]["raw"][0] != 0


def test_random_baselines_are_reproducible_from_the_seed(load):
    loaded = load("bert")
    a, b, c = (explain(loaded, baseline="rand-norm", seed=s, n_steps=4).path.baseline for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_gradient_reaches_only_the_embedding_output(load):
    loaded = load("bert")
    explain(loaded, n_steps=4)
    assert all(not p.requires_grad and p.grad is None for p in loaded.model.parameters())
    assert not loaded.model.get_input_embeddings()._forward_hooks
    assert not loaded.model.training


# --- shared chunks --------------------------------------------------------------------------------


@pytest.mark.parametrize("family,classifier", [("bert", True), ("xlnet", True), ("gpt2", True), ("llama", False)])
def test_requests_sharing_chunks_match_one_at_a_time(load, family, classifier):
    loaded = load(family, classifier)
    fields = [dict(n_steps=10), dict(n_steps=12, method="riemann_middle"), dict(n_steps=7, baseline="rand-norm")]
    requests = [request(loaded, {"text": t, **f}) for t, f in zip(TEXTS, fields)]
    together = explain_batch(with_settings(loaded, internal_batch_size=7), requests)
    for one, shared in zip(requests, together):
        alone = explain_batch(loaded, [one])[0]
        assert shared.summary["target"]["index"] == alone.summary["target"]["index"]
        close(shared.path.intermediate_gradients, alone.path.intermediate_gradients, rtol=1e-4)
        close(shared.path.path_scores, alone.path.path_scores, rtol=1e-5)
        close(shared.path.integrated_gradients, alone.path.integrated_gradients, rtol=1e-4)


def test_a_request_that_cannot_be_prepared_gets_its_error_in_place(load):
    loaded = load("bert")
    good = request(loaded, {"text": TEXT, "n_steps": 3})
    huge = good.model_copy(update={"n_steps": 500, "returns": ["intermediates"]})
    out = explain_batch(with_settings(loaded, max_response_bytes=100_000), [good, huge])
    assert out[0].summary["n_steps"] == 3
    assert isinstance(out[1], RequestError) and out[1].code == 413


@contextmanager
def memory_for(loaded, max_tokens: int, sizes: list):
    """The model runs out of memory (as torch raises it) on a forward over more than
    `max_tokens` tokens (rows x length), the way a worker's device does; `sizes` records the
    rows of every forward tried."""

    def check(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        sizes.append(ids.shape[0])
        if ids.numel() > max_tokens:
            raise torch.OutOfMemoryError(f"out of memory on {tuple(ids.shape)} (simulated device limit)")

    handle = loaded.model.register_forward_pre_hook(check, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def test_out_of_memory_halves_the_chunk_and_retries(load):
    loaded = load("bert")
    expected = explain(loaded, n_steps=12, baseline="pad")
    n_tokens = len(expected.summary["tokens"])
    sizes = []
    with memory_for(loaded, 3 * n_tokens, sizes):
        got = explain(with_settings(loaded, internal_batch_size=12), n_steps=12, baseline="pad")
    assert sizes[:3] == [2, 12, 6] and max(sizes[3:]) == 3  # endpoints (x, x'), then halving
    close(got.path.intermediate_gradients, expected.path.intermediate_gradients, rtol=1e-5)


def test_out_of_memory_even_alone_fails_only_the_request_that_cannot_fit(load):
    loaded = load("bert")
    short = request(loaded, {"text": "A cat.", "n_steps": 6})
    long = request(loaded, {"text": " ".join(["word"] * 60), "n_steps": 6})
    alone = explain_batch(loaded, [short])[0]
    with memory_for(loaded, 40, []):  # a row of the short text fits; the long one never does
        out = explain_batch(with_settings(loaded, internal_batch_size=4), [long, short, long])
    assert [type(o).__name__ for o in out] == ["RequestError", "GradientsAnswer", "RequestError"]
    assert out[0].code == 413 and out[0].field == "text" and "memory" in out[0].message
    close(out[1].path.intermediate_gradients, alone.path.intermediate_gradients, rtol=1e-5)


# --- wire formats ----------------------------------------------------------------------------------

ALL = ["attributions", "intermediate_gradients", "step_sizes", "intermediates", "path_scores"]


def test_npz_and_torch_gzip_round_trip_to_the_json_numbers(load):
    loaded = load("bert")
    result = explain(loaded, n_steps=6, **{"return": ALL})

    def as_format(fmt):
        return dataclasses.replace(result, request=result.request.model_copy(update={"format": fmt}))

    body, content_type = result.body()
    doc = json.loads(body)
    assert content_type == "application/json"

    npz = np.load(io.BytesIO(as_format("npz").body()[0]), allow_pickle=False)
    assert json.loads(str(npz["summary"]))["attributions"] == doc["attributions"]
    np.testing.assert_array_equal(npz["attributions"], np.float32(doc["attributions"]["raw"]))
    for name in ("intermediate_gradients", "intermediates"):
        np.testing.assert_array_equal(npz[name], np.float32(doc[name]["data"]))
    for name in ("step_sizes", "path_scores", "alphas", "gradient_norms"):
        np.testing.assert_array_equal(npz[name], np.asarray(doc[name], dtype=npz[name].dtype))
    np.testing.assert_allclose(
        npz["integrated_gradients"][0].sum(-1), doc["attributions"]["raw"], rtol=1e-5, atol=1e-12
    )

    old = torch.load(io.BytesIO(gzip.decompress(as_format("torch-gzip").body()[0])), weights_only=True)
    n, t, e = 6, len(doc["tokens"]), loaded.model.get_input_embeddings().embedding_dim
    assert old["integrated_gradients"].shape == (1, t, e)
    assert old["intermediate_gradients"].shape == old["intermediates"].shape == (n, t, e)
    assert old["step_sizes"].shape == (n,)
    np.testing.assert_array_equal(old["intermediate_gradients"].numpy(), npz["intermediate_gradients"])
    np.testing.assert_array_equal(old["intermediates"].numpy(), npz["intermediates"])
    np.testing.assert_array_equal(old["integrated_gradients"].numpy(), npz["integrated_gradients"])
    np.testing.assert_array_equal(old["step_sizes"].numpy(), npz["step_sizes"])


def test_torch_gzip_defaults_to_the_old_servers_keys(load):
    result = explain(load("bert"), n_steps=3, format="torch-gzip")
    body, content_type = result.body()
    old = torch.load(io.BytesIO(gzip.decompress(body)), weights_only=True)
    assert content_type == "application/gzip"
    assert set(old) == {"integrated_gradients", "intermediate_gradients", "step_sizes", "intermediates"}


def test_json_summary_carries_the_contract_keys(load):
    summary = explain(load("bert"), target="negative", n_steps=5).summary
    assert {
        "model",
        "tokens",
        "prediction",
        "score",
        "target",
        "baseline",
        "method",
        "n_steps",
        "convergence_delta",
        "attributions",
        "alphas",
        "step_sizes",
        "path_scores",
        "gradient_norms",
    } <= set(summary)
    assert summary["score"] == "probability"
    assert summary["target"]["label"] == "negative" and summary["target"]["index"] == 0
    assert set(summary["prediction"]["probabilities"]) == {"negative", "positive"}
    norm = np.linalg.norm(summary["attributions"]["raw"])
    np.testing.assert_allclose(
        summary["attributions"]["normalized"], np.array(summary["attributions"]["raw"]) / norm, rtol=1e-6
    )


# --- causal LM: the next token -------------------------------------------------------------------------


def test_causal_lm_default_target_is_the_top_next_token(load):
    loaded = load("llama", classifier=False)
    ids = encode(loaded, TEXT).inputs["input_ids"]
    with torch.no_grad():
        top = int(loaded.model(input_ids=ids).logits[0, -1].argmax())
    summary = explain(loaded, n_steps=5).summary
    assert summary["target"]["index"] == top == summary["prediction"]["next_tokens"][0]["id"]


def test_causal_lm_target_by_token_text_or_id(load):
    loaded = load("llama", classifier=False)
    cat = loaded.tokenizer(" cat", add_special_tokens=False)["input_ids"]
    assert len(cat) == 1
    by_text = explain(loaded, target=" cat", n_steps=5)
    by_id = explain(loaded, target=cat[0], n_steps=5)
    assert by_text.summary["target"]["index"] == cat[0] and by_text.summary["target"]["text"] == " cat"
    close(by_text.path.integrated_gradients, by_id.path.integrated_gradients, rtol=1e-6)
    close(by_text.path.integrated_gradients, captum_ig(loaded, by_text))


# --- bad requests ----------------------------------------------------------------------------------------

BAD = [
    ({"text": TEXT, "colour": 1}, "colour"),
    ({"text": TEXT, "baseline": "ones"}, "baseline"),
    ({"text": TEXT, "method": "simpson"}, "method"),
    ({"text": TEXT, "format": "pickle"}, "format"),
    ({"text": TEXT, "return": ["attributions", "hessians"]}, "return"),
    ({"text": TEXT, "return": 5}, "return"),
    ({"text": TEXT, "return": ["step_sizes", "step_sizes"]}, "return"),
    ({"text": TEXT, "target": 2}, "target"),
    ({"text": TEXT, "target": -1}, "target"),
    ({"text": TEXT, "target": "neutral"}, "target"),
    ({"text": TEXT, "target": True}, "target"),
    ({"text": TEXT, "target": 1.0}, "target"),
    ({"text": TEXT, "n_steps": 0}, "n_steps"),
    ({"text": TEXT, "n_steps": -5}, "n_steps"),
    ({"text": TEXT, "n_steps": 501}, "n_steps"),
    ({"text": TEXT, "n_steps": "50"}, "n_steps"),
    ({"text": TEXT, "n_steps": 50.0}, "n_steps"),
    ({"text": TEXT, "n_steps": True}, "n_steps"),
    ({"text": TEXT, "n_steps": 1, "method": "riemann_trapezoid"}, "n_steps"),
    ({"text": TEXT, "seed": -1}, "seed"),
    ({"text": TEXT, "seed": "abc"}, "seed"),
    ({"text": TEXT, "baseline_specials": "some"}, "baseline_specials"),
    ({"text": TEXT, "text_pair": 3}, "text_pair"),
    ({"n_steps": 8}, "text"),
    ({"text": ""}, "text"),
    ({"text": "   "}, "text"),
    ({"text": 5}, "text"),
    ({"sequence": ""}, "sequence"),
    ({"text": TEXT, "sequence": TEXT}, "sequence"),
    ("{not json", "body"),
    ([TEXT], "body"),
]


@pytest.mark.parametrize("body,field", BAD, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD)])
def test_bad_request_names_the_field(load, body, field):
    error = parse_request(load("bert"), GradientsRequest, body)
    assert isinstance(error, RequestError) and error.field == field and error.code == 400


@pytest.mark.parametrize(
    "body,field",
    [
        ({"text": TEXT, "baseline": "mask"}, "baseline"),  # decoders have no mask token
        ({"text": TEXT, "target": "the cat sat"}, "target"),  # not one token
        ({"text": TEXT, "target": 10**9}, "target"),
    ],
)
def test_bad_causal_lm_request_names_the_field(load, body, field):
    error = parse_request(load("llama", classifier=False), GradientsRequest, body)
    assert isinstance(error, RequestError) and error.field == field and error.code == 400


def test_a_model_without_a_score_to_attribute_is_refused(load):
    assert parse_request(load("bert", classifier=False), GradientsRequest, {"text": TEXT}).field == "model"


def test_old_name_sequence_is_accepted(load):
    parsed = request(load("bert"), {"sequence": TEXT})
    assert parsed.text == TEXT and parsed.baseline == "pad" and parsed.n_steps == 50


def test_too_large_response_is_413_before_computing_and_says_what_to_ask_for(load):
    loaded = with_settings(load("bert"), max_response_bytes=1_000_000)
    body = {"text": TEXT, "n_steps": 500, "return": ["intermediate_gradients"]}
    sizes = []
    with memory_for(loaded, 10**9, sizes):
        (error,) = explain_batch(loaded, [request(loaded, body)])
    assert isinstance(error, RequestError) and error.code == 413 and error.field == "return"
    assert '"format": "npz"' in error.message and "n_steps" in error.message
    assert sizes == []  # refused before any forward
    assert explain_batch(loaded, [request(loaded, {"text": TEXT, "n_steps": 500})])[0].summary["n_steps"] == 500


def test_too_long_text_is_413(load):
    error = parse_request(with_settings(load("bert"), max_text_chars=100), GradientsRequest, {"text": "a" * 101})
    assert error.code == 413 and error.field == "text"


# --- score: probability (default) or logit (the old server) -----------------------------------------


@pytest.mark.parametrize("family,classifier", [("bert", True), ("llama", False)])
def test_logit_score_equals_captum_on_logits(load, family, classifier):
    loaded = load(family, classifier)
    result = explain(loaded, score="logit", baseline="pad", baseline_specials="replace", n_steps=20)
    assert result.summary["score"] == "logit"
    close(result.path.integrated_gradients, captum_ig(loaded, result))


def test_logit_torch_gzip_is_what_the_old_server_computed(load):
    """The old int-gradients-server: captum's LayerIntegratedGradients on the embeddings, the
    raw logit of class 1, every position's embedding replaced (pad), gzip(torch.save)."""
    loaded = load("bert")
    result = explain(
        loaded, score="logit", target=1, baseline="pad", baseline_specials="replace", format="torch-gzip", n_steps=50
    )
    old = torch.load(io.BytesIO(gzip.decompress(result.body()[0])), weights_only=True)
    close(old["integrated_gradients"][0], captum_ig(loaded, result))
    summary = result.summary
    gap = summary["target"]["score"] - summary["baseline"]["score"]  # logits, not probabilities
    logits = loaded.model(**encode(loaded, TEXT).inputs).logits[0]
    assert summary["target"]["score"] == pytest.approx(float(logits[1]), abs=1e-5)
    assert abs(summary["convergence_delta"]) < 1e-3 * abs(gap)


def test_requests_with_different_scores_share_a_batch(load):
    loaded = load("bert")
    bodies = [{"text": TEXT, "score": "logit", "n_steps": 8}, {"text": TEXTS[0], "n_steps": 8}]
    together = explain_batch(loaded, [request(loaded, b) for b in bodies])
    for body, shared in zip(bodies, together):
        alone = explain_batch(loaded, [request(loaded, body)])[0]
        close(shared.path.integrated_gradients, alone.path.integrated_gradients, rtol=1e-4)
