"""Explaining a chat model's answer on the real SmolLM2-135M-Instruct: conversations through the
chat template, sentences and sources, forward-only occlusion and ContextCite, dry runs.

Oracles: `tokenizer.apply_chat_template` (token ids); a direct re-run of the model on each
ablated prompt (occlusion, within 1e-4); MIT's `context-cite` package 0.0.1 on the same
partition and masks (ContextCite, within 1e-4: its forwards run one prompt at a time, ours
batched and padded); the sum identities of integrated gradients (per message = per token).
"""

import numpy as np
import pytest
import torch

from exformer import explain_gradients, load_model
from exformer.contract.errors import RequestError
from exformer.core.units import ablate_text, sentence_spans
from support.rag import ANSWER, DOC_A, DOC_B, QUESTION, RAG, SOURCES
from tiny_models import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")

SMOLLM2 = ROOT / "build" / "models" / "smollm2"


@pytest.fixture(scope="module")
def lm():
    if not (SMOLLM2 / "config.json").exists():
        pytest.skip("build/models/smollm2 is made by bin/setup")
    return load_model(SMOLLM2)


def rag(**fields):
    return {"messages": RAG, "continuation": ANSWER, "sources": SOURCES, **fields}


# --- conversations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "messages",
    [
        RAG,
        [{"role": "user", "content": "Hi there. How are you?"}],  # the template adds its default system prompt
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "Another one?"},
        ],
    ],
)
def test_chat_token_ids_are_the_templates_and_every_token_says_its_message(lm, messages):
    r = explain_gradients(lm, {"messages": messages, "continuation": " Fine.", "attribution": "occlusion"})
    expected = list(lm.tokenizer.apply_chat_template(messages, add_generation_prompt=True)["input_ids"])
    prompt = [t for t in r["tokens"] if not t["target"]]
    assert [t["id"] for t in prompt] == expected
    for token in prompt:
        if token["template"]:
            assert token["start"] is None and token["segment"] is None
        else:  # a content token: its characters are in its own message
            content = messages[token["message"]]["content"]
            assert content[token["start"] : token["end"]] == token["surface"]
            assert token["role"] == messages[token["message"]]["role"]
    written = "".join(t["surface"] for t in prompt if not t["template"])
    assert written == "".join(m["content"] for m in messages)  # every written character, once
    assert [m["content"] for m in r["messages"]] == [m["content"] for m in messages]
    assert prompt[-1]["message"] is None and prompt[-1]["role"] == "assistant"  # the generation prompt


def test_integrated_gradients_of_a_conversation_keep_template_tokens_and_sum_per_message(lm):
    r = explain_gradients(lm, rag(n_steps=16, aggregate="sentence"))
    template = [t["index"] for t in r["tokens"] if t.get("template")]
    assert template
    for target in r["targets"]:
        raw = np.array(target["attributions"]["raw"])
        assert np.all(raw[template] == 0)  # held fixed along the path: nothing to attribute
        messages = sum(m["attribution"] for m in target["message_attributions"])
        n_prompt = r["targets"][0]["position"]
        assert messages == pytest.approx(raw[:n_prompt].sum(), abs=1e-5)  # every prompt token is in one turn
        sources = {s["id"]: s["attribution"] for s in target["source_attributions"]}
        for source in r["sources"]:
            assert sources[source["id"]] == pytest.approx(raw[source["tokens"]].sum(), abs=1e-5)
        assert target["relative_delta"] == pytest.approx(
            abs(target["convergence_delta"]) / abs(target["score"] - target["baseline_score"])
        )
        assert target["within_tolerance"] == (target["relative_delta"] <= 0.01)
    assert r["within_tolerance"] == all(t["within_tolerance"] for t in r["targets"])
    whole = r["continuation_attributions"]
    rows = sum(np.pad(t["attributions"]["raw"], (0, len(r["tokens"]) - t["position"])) for t in r["targets"])
    np.testing.assert_allclose(whole["attributions"]["raw"], rows, atol=1e-5)
    assert [s["text"] for s in r["sentences"] if s["segment"] == 1] == [ANSWER]


def test_messages_and_sources_are_refused_naming_the_field(lm):
    cases = {
        "messages": {"text": "a", "messages": RAG, "continuation": "b"},
        "sources[1]": rag(sources=[{"id": "A", "text": DOC_A}, {"id": "B", "text": "not in the prompt"}]),
        "sources[0]": rag(sources=[{"id": "A", "text": "The"}]),  # occurs more than once
        "sources": rag(sources=[{"id": "A", "text": DOC_A}, {"id": "A", "text": DOC_B}]),
    }
    for field, body in cases.items():
        with pytest.raises(RequestError) as error:
            explain_gradients(lm, body)
        assert error.value.field == field, error.value.message
    overlap = rag(
        sources=[{"id": "A", "message": 1, "start": 12, "end": 40}, {"id": "B", "message": 1, "start": 30, "end": 50}]
    )
    with pytest.raises(RequestError, match="overlaps"):
        explain_gradients(lm, overlap)


def test_messages_on_a_model_without_a_chat_template_is_refused(tiny_model_dir):
    tiny = load_model(tiny_model_dir("gpt2"), "gpt2")
    tiny.tokenizer.chat_template = None  # the tiny models borrow SmolLM2's tokenizer; a base model's has none
    with pytest.raises(RequestError) as error:
        explain_gradients(tiny, {"messages": [{"role": "user", "content": "hi"}], "continuation": " yo"})
    assert error.value.field == "messages" and "chat template" in error.value.message


# --- sentences ----------------------------------------------------------------------------------


def test_the_sentence_rule_and_the_ablation_rule():
    assert sentence_spans("Hi. Is it “so”? Yes!\nNew line\n\n  Last one") == [
        (0, 3),
        (4, 15),
        (16, 20),
        (21, 29),
        (33, 41),
    ]
    assert sentence_spans("3.5 is a number.") == [(0, 16)]
    text = "A b. C d. E f."
    assert ablate_text(text, [(0, 4)]) == "C d. E f."
    assert ablate_text(text, [(10, 14)]) == "A b. C d."
    assert ablate_text(text, [(0, 4), (5, 9), (10, 14)]) == ""


# --- occlusion ----------------------------------------------------------------------------------


def test_occlusion_equals_a_direct_rerun_of_the_model_on_each_ablated_prompt(lm):
    r = explain_gradients(lm, rag(attribution="occlusion", score="log_probability"))
    targets = [t["id"] for t in r["targets"]]
    full = _direct_log_probs(lm, RAG, targets)
    for k, unit in enumerate(r["units"]):
        content = RAG[1]["content"]
        ablated = [RAG[0], {"role": "user", "content": ablate_text(content, [(unit["start"], unit["end"])])}]
        without = _direct_log_probs(lm, ablated, targets)
        expected = full - without
        actual = [t["attributions"][k]["attribution"] for t in r["targets"]]
        np.testing.assert_allclose(actual, expected, atol=1e-4)
        whole = r["continuation_attributions"][k]["attribution"]
        assert whole == pytest.approx(expected.sum(), abs=1e-4)
    assert r["forwards"] == 3 and r["score"] == "log_probability" and r["unit"] == "source"


def test_occlusion_by_baseline_token_and_by_sentence(lm):
    r = explain_gradients(lm, rag(attribution="occlusion", ablation="baseline", unit="sentence", score="logit"))
    assert r["baseline"] == "pad" and r["unit"] == "sentence"
    assert [u["text"] for u in r["units"]][:2] == [
        "Answer the question from the documents.",
        "Document A: The Eiffel Tower stands in Paris.",
    ]
    targets = [t["id"] for t in r["targets"]]
    ids = list(lm.tokenizer.apply_chat_template(RAG, add_generation_prompt=True)["input_ids"])
    unit = r["units"][1]
    replaced = [lm.tokenizer.pad_token_id if i in unit["tokens"] else t for i, t in enumerate(ids)]
    with torch.no_grad():
        logits = lm.model(torch.tensor([replaced + targets])).logits[0].double()
        base = lm.model(torch.tensor([ids + targets])).logits[0].double()
    n = len(ids)
    expected = [float(base[n - 1 + t, y] - logits[n - 1 + t, y]) for t, y in enumerate(targets)]
    np.testing.assert_allclose([t["attributions"][1]["attribution"] for t in r["targets"]], expected, atol=1e-4)


def _direct_log_probs(lm, messages, targets) -> np.ndarray:
    ids = list(lm.tokenizer.apply_chat_template(messages, add_generation_prompt=True)["input_ids"])
    with torch.no_grad():
        logp = lm.model(torch.tensor([ids + targets])).logits[0].double().log_softmax(-1)
    return np.array([float(logp[len(ids) - 1 + t, y]) for t, y in enumerate(targets)])


# --- ContextCite --------------------------------------------------------------------------------


def test_contextcite_equals_the_context_cite_package_on_the_same_partition_and_masks(lm):
    """The package renders "{context}\\n\\nQuery: {query}" as one user turn; we send the same turn
    with the context's sentences as sources, and give the package our partition (our ablation
    rule) so both run the same prompts; its masks, forwards and Lasso are its own."""
    context_cite = pytest.importorskip("context_cite")
    from context_cite.context_partitioner import BaseContextPartitioner

    context = f"{DOC_A} {DOC_B}"
    spans = sentence_spans(context)

    class OurPartition(BaseContextPartitioner):
        num_sources = len(spans)

        def split_context(self):
            pass

        def get_source(self, index):
            return context[slice(*spans[index])]

        def get_context(self, mask=None):
            mask = np.ones(len(spans), bool) if mask is None else mask
            return ablate_text(context, [s for s, keep in zip(spans, mask) if not keep])

    cc = context_cite.ContextCiter(
        lm.model,
        lm.tokenizer,
        context,
        QUESTION,
        partitioner=OurPartition(context),
        prompt_template="{context}\n\nQuery: {query}",
        num_ablations=32,
    )
    prompt_ids, prompt = cc._get_prompt_ids(return_prompt=True)
    cc._cache["output"] = prompt + ANSWER
    theirs = cc.get_attributions(verbose=False)

    message = [{"role": "user", "content": f"{context}\n\nQuery: {QUESTION}"}]
    sources = [{"id": f"s{k}", "message": 0, "start": a, "end": b} for k, (a, b) in enumerate(spans)]
    r = explain_gradients(
        lm,
        {
            "messages": message,
            "continuation": ANSWER,
            "sources": sources,
            "attribution": "contextcite",
            "n_ablations": 32,
            "n_holdout": 0,
        },
    )
    assert [t["id"] for t in r["targets"]] == cc._response_ids
    ours = [s["attribution"] for s in r["continuation_attributions"]]
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    first_token = [t["attributions"] for t in r["targets"]][0]
    start, end = cc._char_range_to_token_range(0, 3)  # "The": the first target token
    assert (start, end) == (0, 1)
    weight, _ = cc.solver.fit(cc._masks, cc._logit_probs[:, 0], 1)
    np.testing.assert_allclose([a["attribution"] for a in first_token], weight, atol=1e-4)
    assert r["surrogate"]["n_ablations"] == 32 and r["surrogate"]["fit"]["r2"] is None


def test_contextcite_reports_its_fit_on_held_out_masks(lm):
    r = explain_gradients(lm, rag(attribution="contextcite", unit="sentence"))
    s = r["surrogate"]
    assert s["n_ablations"] == 64 and s["n_holdout"] == 16 and s["keep_probability"] == 0.5
    assert s["fit"]["r2"] is not None and -1 <= s["fit"]["spearman"] <= 1
    assert 1 < s["n_distinct_prompts"] == r["forwards"] <= 81
    assert r["score"] == "logit_probability"


# --- the source holding the answer leads --------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [{"attribution": "occlusion"}, {"attribution": "contextcite"}, {"n_steps": 16}],
    ids=["occlusion", "contextcite", "integrated_gradients"],
)
def test_the_source_holding_the_answer_leads_under_every_method(lm, fields):
    r = explain_gradients(lm, rag(**fields))
    whole = r["continuation_attributions"]
    values = {s["id"]: s["attribution"] for s in (whole if isinstance(whole, list) else whole["sources"])}
    print(fields, values)
    assert values["A"] > values["B"]


# --- cost before running ------------------------------------------------------------------------


def test_a_dry_run_says_what_it_would_run_and_runs_nothing(lm):
    r = explain_gradients(lm, rag(n_steps=16, dry_run=True))
    n_prompt = len(lm.tokenizer.apply_chat_template(RAG, add_generation_prompt=True)["input_ids"])
    n_t = len(lm.tokenizer(ANSWER, add_special_tokens=False)["input_ids"])
    assert (r["n_tokens_prompt"], r["n_tokens_continuation"]) == (n_prompt, n_t)
    assert (r["forwards"], r["backwards"], r["positions"]) == (16, 16 * n_t, 16 * (n_prompt + n_t - 1))
    assert r["estimated_seconds"] > 0 and r["estimated_peak_bytes"] > sum(p.numel() * 4 for p in lm.model.parameters())
    assert any("occlusion" in c for c in r["cheaper"])
    o = explain_gradients(lm, rag(attribution="occlusion", dry_run=True))
    assert (o["forwards"], o["backwards"]) == (3, 0)
    assert o["estimated_seconds"] < r["estimated_seconds"]


def test_a_request_over_the_archives_time_limit_is_refused_with_its_estimate(lm):
    import dataclasses

    from exformer.contract.settings import Settings

    tight = dataclasses.replace(lm, settings=Settings(max_estimated_seconds=0.5))
    with pytest.raises(RequestError) as error:
        explain_gradients(tight, rag(n_steps=64))
    assert error.value.code == 413 and error.value.field == "n_steps"
    assert error.value.estimate["within_limits"] is False and error.value.estimate["cheaper"]
    assert "occlusion" in error.value.message


# --- served -------------------------------------------------------------------------------------


def test_served_chat_answer_on_smollm2_gradients(torchserve):
    from exformer.contract.responses import AblationResponse, CostEstimate, ErrorResponse

    occluded = torchserve.post("smollm2-gradients", rag(attribution="occlusion"))
    assert occluded.status == 200, occluded.body[:300]
    answer = AblationResponse.model_validate_json(occluded.body)
    whole = {a.id: a.attribution for a in answer.continuation_attributions}
    assert whole["A"] > whole["B"] and answer.forwards == 3
    cited = torchserve.post("smollm2-gradients", rag(attribution="contextcite", n_ablations=16, n_holdout=8))
    assert cited.status == 200, cited.body[:300]
    assert AblationResponse.model_validate_json(cited.body).surrogate.n_ablations == 16
    estimate = torchserve.post("smollm2-gradients", rag(n_steps=16, dry_run=True))
    assert estimate.status == 200 and CostEstimate.model_validate_json(estimate.body).backwards > 0
    for body, field in [
        (rag(sources=[{"id": "A", "text": "nowhere"}]), "sources[0]"),
        ({"messages": [{"role": "robot", "content": "hi"}], "continuation": "x"}, "messages[0].role"),
        (rag(attribution="occlusion", n_steps=8), "n_steps"),
    ]:
        bad = torchserve.post("smollm2-gradients", body)
        assert bad.status == 400 and ErrorResponse.model_validate_json(bad.body).field == field, bad.body
