"""The attribution methods registry (exformer.explain.methods): every registered method answers
its contract on tiny and real models and says which method answered; gradient × input and
saliency equal independent oracles; each method refuses the fields of the others, naming them;
a request without `attribution` is integrated gradients, as before the registry.

Oracles, with the same F (softmax probability of the target, a classifier's class or a causal
LM's next token after its prefix) as a function of the word-embedding output:
gradient × input: captum's LayerGradientXActivation on model.get_input_embeddings() (x · ∂F/∂x,
so the "zero" baseline with every position replaced); saliency: captum's Saliency (abs=False)
on the embedding output fed as inputs_embeds, then the L2 norm over the hidden size.
"""

from typing import get_args

import pytest
import torch
from captum.attr import LayerGradientXActivation, Saliency

from exformer import RequestError, explain_gradients, load_model
from exformer.contract import GradientsRequest
from exformer.contract.responses import AblationResponse, GenerationResponse, GradientsResponse
from exformer.contract.vocabulary import (
    FORWARD_ATTRIBUTIONS,
    GRADIENT_ATTRIBUTIONS,
    METHOD_OPTIONS,
    METHOD_SPECIFIC,
    Attribution,
)
from exformer.core.tokens import encode
from exformer.explain import parse_request
from exformer.explain.methods import METHODS
from tiny_models import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPT, CONTINUATION = "The capital of France is", " Paris"
LONGER = " Paris, the"  # three target tokens: a row per token
REVIEW = "A warm, funny and quietly moving film."
FLOAT32 = {"dtype": "float32"}
# Cheap settings for the runs that only check the answer's shape.
CHEAP = {"integrated_gradients": {"n_steps": 4}, "contextcite": {"n_ablations": 8, "n_holdout": 4}}
# Equal to the oracle within 1e-5 of a row's largest |value| on the tiny Llama (and the sentiment
# classifier). SmolLM2's float32 gradients are ill-conditioned: against a float64 run of the same
# model, captum's float32 gradients at the input are off by 5e-5 of their largest value and ours
# by 1.3e-4, so the two float32 computations differ by up to 3.2e-4 of a row's largest |value|
# (the row of "," in " Paris, the") however F is computed; there the test allows 1e-3.
SMOLLM2_AND_TINY = [("tiny-lm", 1e-5), ("smollm2", 1e-3)]


@pytest.fixture(scope="module")
def models(tiny_model_dir):
    """kind → loaded model: tiny random (llama LM, BERT classifier) and the real ones."""
    cache = {}
    paths = {
        "tiny-lm": lambda: tiny_model_dir("llama"),
        "tiny-classifier": lambda: tiny_model_dir("bert", True),
        "smollm2": lambda: ROOT / "build/models/smollm2",
        "sentiment": lambda: ROOT / "build/models/sentiment",
    }

    def get(kind: str):
        if kind not in cache:
            cache[kind] = load_model(paths[kind](), kind, FLOAT32)
        return cache[kind]

    return get


def close(actual, expected, rtol=1e-5):
    """Equal within rtol of the largest magnitude."""
    actual, expected = torch.as_tensor(actual).double(), torch.as_tensor(expected).detach().double()
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * float(expected.abs().max()))


def rows_of(answer) -> list[list[float]]:
    return [t["attributions"]["raw"] for t in answer["targets"]]


# --- the registry ---------------------------------------------------------------------------------


def test_the_registry_is_the_contracts_list_of_methods():
    assert set(METHODS) == set(get_args(Attribution)) == set(METHOD_OPTIONS)
    assert set(GRADIENT_ATTRIBUTIONS) | set(FORWARD_ATTRIBUTIONS) == set(METHODS)
    assert all(method.name == name for name, method in METHODS.items())
    assert {name for name, method in METHODS.items() if method.single_target} == set(GRADIENT_ATTRIBUTIONS)


@pytest.mark.parametrize("size", ["tiny", "real"])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_answers_a_continuation_in_its_contract(models, name, size):
    model = models("tiny-lm" if size == "tiny" else "smollm2")
    answer = explain_gradients(
        model, {"text": PROMPT, "continuation": CONTINUATION, "attribution": name, **CHEAP.get(name, {})}
    )
    (AblationResponse if name in FORWARD_ATTRIBUTIONS else GenerationResponse).model_validate(dict(answer))
    assert answer["attribution"] == name
    assert [t["text"] for t in answer["targets"]] == [CONTINUATION]
    if name in GRADIENT_ATTRIBUTIONS:
        assert len(rows_of(answer)[0]) == answer["targets"][0]["position"]  # the prompt's tokens
        complete = METHODS[name].complete
        assert (answer["targets"][0]["convergence_delta"] is not None) == complete
        assert (answer["within_tolerance"] is not None) == complete
    else:
        assert answer["forwards"] >= 2 and answer["targets"][0]["attributions"]


@pytest.mark.parametrize("size", ["tiny", "real"])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_gradient_method_explains_a_classifier_and_forward_ones_refuse(models, name, size):
    model = models("tiny-classifier" if size == "tiny" else "sentiment")
    body = {"text": REVIEW, "attribution": name, **CHEAP.get(name, {})}
    if name in FORWARD_ATTRIBUTIONS:
        with pytest.raises(RequestError) as refused:
            explain_gradients(model, body)
        assert refused.value.field == "attribution" and refused.value.code == 400
        return
    answer = explain_gradients(model, body)
    GradientsResponse.model_validate(dict(answer))
    assert answer["attribution"] == name
    assert len(answer["attributions"]["raw"]) == len(answer["tokens"])
    assert (answer["convergence_delta"] is None) == (not METHODS[name].complete)


# --- gradient × input: captum's x · ∂F/∂x -----------------------------------------------------------


def captum_gxi_classifier(model, text: str, target: int) -> torch.Tensor:
    encoded = encode(model, text, None)
    rest = {k: v for k, v in encoded.inputs.items() if k != "input_ids"}

    def forward(input_ids):
        return model.model(input_ids=input_ids, **rest).logits.softmax(-1)[:, target]

    layer = LayerGradientXActivation(forward, model.model.get_input_embeddings())
    return layer.attribute(encoded.inputs["input_ids"])[0].sum(-1)  # [T]


def captum_gxi_rows(model, answer) -> list[torch.Tensor]:
    """Row t: x · ∂F_t/∂x over prompt + y_<t, F_t the probability of target t after its prefix."""
    ids = torch.tensor([t["id"] for t in answer["tokens"]])
    rows = []
    for target in answer["targets"]:

        def forward(input_ids, target=target["id"]):
            return model.model(input_ids=input_ids).logits[:, -1].softmax(-1)[:, target]

        layer = LayerGradientXActivation(forward, model.model.get_input_embeddings())
        rows.append(layer.attribute(ids[None, : target["position"]])[0].sum(-1))
    return rows


def test_gradient_x_input_equals_captum_on_the_sentiment_classifier(models):
    model = models("sentiment")
    body = {"text": REVIEW, "attribution": "gradient_x_input", "baseline": "zero", "score": "probability"}
    answer = explain_gradients(model, {**body, "baseline_specials": "replace"})
    target = answer["target"]["index"]
    probabilities = answer["prediction"]["probabilities"]
    assert answer["target"]["label"] == max(probabilities, key=probabilities.get)  # the predicted class
    expected = captum_gxi_classifier(model, REVIEW, target)
    close(answer["attributions"]["raw"], expected)
    # completeness as integrated gradients with one right point: Σ GxI − (F(x) − F(0))
    delta = sum(answer["attributions"]["raw"]) - (answer["target"]["score"] - answer["baseline"]["score"])
    assert answer["convergence_delta"] == pytest.approx(delta, abs=1e-6)
    # "keep" (the default): [CLS] and [SEP] stay themselves, x − x′ = 0 there; the rest unchanged
    kept = explain_gradients(model, body)
    special = torch.tensor([t["special"] for t in kept["tokens"]])
    assert special.any()
    close(kept["attributions"]["raw"], torch.where(special, 0.0, expected))


@pytest.mark.parametrize("kind,rtol", SMOLLM2_AND_TINY)
def test_gradient_x_input_equals_captum_on_each_target_row_of_a_continuation(models, kind, rtol):
    model = models(kind)
    body = {
        "text": PROMPT,
        "continuation": LONGER,
        "attribution": "gradient_x_input",
        "baseline": "zero",
        "baseline_specials": "replace",
    }
    answer = explain_gradients(model, {**body, "continuation_baseline": "replace"})
    assert len(answer["targets"]) == 3
    expected = captum_gxi_rows(model, answer)
    for row, want in zip(rows_of(answer), expected):
        close(row, want, rtol)
    # "keep" (the default): earlier target tokens stay themselves, so their columns are 0
    kept = explain_gradients(model, body)
    n_prompt = kept["targets"][0]["position"]
    for row, want in zip(rows_of(kept), expected):
        close(row, torch.cat([want[:n_prompt], torch.zeros(len(want) - n_prompt)]), rtol)


# --- saliency: ‖∂F/∂x‖₂ per token -----------------------------------------------------------------


def saliency_of(model, ids: torch.Tensor, score, **rest) -> torch.Tensor:
    """captum's Saliency of score(logits) w.r.t. the embedding output (fed as inputs_embeds), its
    L2 norm over the hidden size: [T]."""
    with torch.no_grad():
        x = model.model.get_input_embeddings()(ids[None]).float().requires_grad_()

    def forward(inputs_embeds):
        return score(model.model(inputs_embeds=inputs_embeds, **rest).logits)

    return Saliency(forward).attribute(x, abs=False)[0].norm(dim=-1)


def test_saliency_equals_the_embedding_gradient_norm_on_the_sentiment_classifier(models):
    model = models("sentiment")
    answer = explain_gradients(model, {"text": REVIEW, "attribution": "saliency"})
    target = answer["target"]["index"]
    encoded = encode(model, REVIEW, None)
    rest = {k: v for k, v in encoded.inputs.items() if k != "input_ids"}
    expected = saliency_of(model, encoded.inputs["input_ids"][0], lambda logits: logits.softmax(-1)[:, target], **rest)
    close(answer["attributions"]["raw"], expected)
    assert answer["convergence_delta"] is None


@pytest.mark.parametrize("kind,rtol", SMOLLM2_AND_TINY)
def test_saliency_equals_the_embedding_gradient_norm_on_each_target_row_of_a_continuation(models, kind, rtol):
    model = models(kind)
    answer = explain_gradients(model, {"text": PROMPT, "continuation": LONGER, "attribution": "saliency"})
    ids = torch.tensor([t["id"] for t in answer["tokens"]])
    for row, target in zip(rows_of(answer), answer["targets"]):
        expected = saliency_of(
            model, ids[: target["position"]], lambda logits, t=target["id"]: logits[:, -1].softmax(-1)[:, t]
        )
        close(row, expected, rtol)
        assert target["convergence_delta"] is None and target["within_tolerance"] is None
    assert answer["within_tolerance"] is None


# --- which fields each method reads -------------------------------------------------------------------

# A valid value of every field that only some methods read (the wire's names: "return" for returns).
SAMPLES = {
    "baseline": "zero",
    "baseline_specials": "replace",
    "seed": 3,
    "n_steps": 8,
    "method": "riemann_left",
    "tolerance": 0.05,
    "max_n_steps": 64,
    "return": ["attributions"],
    "rows": "whole",
    "format": "npz",
    "continuation_baseline": "replace",
    "foil": " London",
    "dtype": "float32",
    "score": "logit",
    "unit": "token",
    "ablation": "baseline",
    "n_ablations": 8,
    "keep_probability": 0.25,
    "n_holdout": 4,
}
WIRE = {"returns": "return"}
NEEDS = {"tolerance": {"n_steps": "auto"}, "max_n_steps": {"n_steps": "auto"}}  # what makes them meaningful


def test_every_method_specific_field_has_a_sample():
    assert {WIRE.get(f, f) for f in METHOD_SPECIFIC} == set(SAMPLES)


REFUSED = sorted((name, WIRE.get(f, f)) for name in METHODS for f in METHOD_SPECIFIC - METHOD_OPTIONS[name])
ACCEPTED = sorted((name, WIRE.get(f, f)) for name in METHODS for f in METHOD_OPTIONS[name])


def test_the_documented_table_of_fields_is_method_options():
    """docs/api/methods.md's table: a ✓ where the method reads the field."""
    page = (ROOT / "docs/api/methods.md").read_text()
    lines = [line for line in page.splitlines() if line.startswith("| field | integrated_gradients")]
    assert len(lines) == 1
    rows = page[page.index(lines[0]) :].split("\n\n")[0].splitlines()
    names = [cell.strip() for cell in rows[0].strip("|").split("|")][1:]
    documented = {name: set() for name in names}
    for row in rows[2:]:
        field, *marks = [cell.strip() for cell in row.strip("|").split("|")]
        for name, mark in zip(names, marks):
            if mark == "✓":
                documented[name].add(field.strip("`"))
    assert documented == {name: {WIRE.get(f, f) for f in fields} for name, fields in METHOD_OPTIONS.items()}


@pytest.mark.parametrize("name,field", REFUSED)
def test_a_field_of_another_method_is_refused_naming_it(models, name, field):
    body = {"text": PROMPT, "continuation": CONTINUATION, "attribution": name, field: SAMPLES[field]}
    refused = parse_request(models("tiny-lm"), GradientsRequest, body)
    assert isinstance(refused, RequestError), body
    assert refused.field == field and refused.code == 400, refused.message
    assert refused.message.startswith(f"{field}: ")


@pytest.mark.parametrize("name,field", ACCEPTED)
def test_a_field_of_the_method_is_read(models, name, field):
    body = {
        "text": PROMPT,
        "continuation": CONTINUATION,
        "attribution": name,
        field: SAMPLES[field],
        **NEEDS.get(field, {}),
    }
    parsed = parse_request(models("tiny-lm"), GradientsRequest, body)
    assert not isinstance(parsed, RequestError), parsed.message


@pytest.mark.parametrize(
    "name,body,field",
    [
        ("saliency", {"n_steps": 8}, "n_steps"),
        ("saliency", {"baseline": "zero"}, "baseline"),
        ("gradient_x_input", {"unit": "token"}, "unit"),
        ("gradient_x_input", {"n_steps": "auto"}, "n_steps"),
        ("integrated_gradients", {"n_ablations": 8}, "n_ablations"),
    ],
)
def test_a_classifier_request_with_another_methods_field_is_refused_naming_it(models, name, body, field):
    with pytest.raises(RequestError) as refused:
        explain_gradients(models("tiny-classifier"), {"text": REVIEW, "attribution": name, **body})
    assert refused.value.field == field and f'not "{name}"' in refused.value.message


# --- the wire stays compatible -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,body",
    [
        ("tiny-classifier", {"text": REVIEW, "n_steps": 8}),
        ("tiny-classifier", {"text": REVIEW, "n_steps": "auto", "max_n_steps": 64}),
        ("tiny-lm", {"text": PROMPT, "continuation": LONGER, "n_steps": 8, "baseline": "unk"}),
    ],
)
def test_a_request_without_attribution_is_integrated_gradients_as_before(models, kind, body):
    model = models(kind)
    before = explain_gradients(model, body)
    explicit = explain_gradients(model, {**body, "attribution": "integrated_gradients"})
    assert before["attribution"] == "integrated_gradients"
    assert dict(before) == dict(explicit)


# --- rows "whole": the whole answer in one backward per path point ---------------------------------


@pytest.mark.parametrize(
    "name, extra",
    [("integrated_gradients", {"n_steps": 6}), ("gradient_x_input", {}), ("saliency", {}), ("attnlrp", {})],
)
def test_rows_whole_is_the_whole_answer_of_the_rows_in_one_backward_per_point(models, name, extra):
    """F = Σ_t F_t is linear in the rows' F_t, so the one row of `"rows": "whole"` equals the sum of
    the rows a request without it answers (saliency: the norm of the summed gradient, not a sum of
    norms, so only its shape); its dry run counts one backward per point instead of one per target."""
    lm = models("tiny-lm")
    body = {"text": PROMPT, "continuation": LONGER, "attribution": name, "score": "log_probability", **extra}
    each = explain_gradients(lm, body)
    whole = explain_gradients(lm, {**body, "rows": "whole"})
    assert all("attributions" not in t for t in whole["targets"]) and len(whole["targets"]) == len(each["targets"])
    assert [t["score"] for t in whole["targets"]] == pytest.approx([t["score"] for t in each["targets"]], rel=1e-6)
    ours = whole["continuation_attributions"]["attributions"]["raw"]
    assert len(ours) == len(each["continuation_attributions"]["attributions"]["raw"])
    if name != "saliency":
        close(ours, each["continuation_attributions"]["attributions"]["raw"])
    if name == "integrated_gradients":  # complete: the whole answer's delta against Σ F_t(x) − Σ F_t(x')
        block = whole["continuation_attributions"]
        change = sum(t["score"] - t["baseline_score"] for t in whole["targets"])
        assert block["convergence_delta"] == pytest.approx(sum(ours) - change, abs=1e-5)
        assert whole["within_tolerance"] == block["within_tolerance"]
    counted = explain_gradients(lm, {**body, "rows": "whole", "dry_run": True})
    per_target = explain_gradients(lm, {**body, "dry_run": True})
    assert counted["backwards"] * len(each["targets"]) == per_target["backwards"]


def test_rows_whole_is_evaluated_on_the_whole_answer(models):
    answer = explain_gradients(
        models("tiny-lm"),
        {"text": PROMPT, "continuation": LONGER, "attribution": "attnlrp", "rows": "whole", "evaluate": {}},
    )
    assert [row["target"] for row in answer["evaluation"]["rows"]] == [None]


@pytest.mark.parametrize(
    "body", [{"text": REVIEW}, {"text": PROMPT, "continuation": LONGER, "attribution": "occlusion"}]
)
def test_rows_whole_is_refused_where_there_are_no_rows_to_sum(models, body):
    model = models("tiny-classifier" if "continuation" not in body else "tiny-lm")
    with pytest.raises(RequestError) as refused:
        explain_gradients(model, {**body, "rows": "whole"})
    assert refused.value.field == "rows"
