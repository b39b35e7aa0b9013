"""No request can stall or kill a worker: every count that multiplies work is bounded before any
work (the contract's fixed limits, the archive's settings), a dry run is counted and not run,
a request that overruns stops at the worker's deadline with a 503 the worker answers itself,
any schema-valid seed works, and errors name the field to fix (nested ones by their path).

Served tests go through a real TorchServe (tests/conftest.py's session server); the passes'
deadline checks are shown in-process on the real models.
"""

import time

import numpy as np
import pytest
import yaml

from conftest import DEADLINE_SECONDS, DEADLINE_TIMEOUT
from exformer import explain_gradients, load_model
from exformer.contract.errors import DeadlineError, RequestError
from exformer.contract.parsing import parse
from exformer.contract.requests import GradientsRequest
from exformer.contract.settings import Settings
from exformer.contract.vocabulary import MAX_INDICES, MAX_MESSAGES, MAX_SOURCES
from exformer.core.ablation import contextcite_masks
from exformer.core.cost import calibrated
from exformer.core.deadline import deadline
from exformer.serving.handler import worker_settings
from support.rag import RAG, SOURCES
from tiny_models import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")

SMOLLM2, SENTIMENT = ROOT / "build" / "models" / "smollm2", ROOT / "build" / "models" / "sentiment"
LIMITS = Settings()  # the archives' defaults (deploy/*.yaml change none of these)
REVIEW = "A dull, lifeless film whose actors seem as bored as the audience. " * 6


def rag(**fields):
    return {"messages": RAG, "continuation": "It is in Paris.", "sources": SOURCES, **fields}


@pytest.fixture(scope="module")
def lm():
    if not (SMOLLM2 / "config.json").exists():
        pytest.skip("build/models/smollm2 is made by bin/setup")
    model = load_model(SMOLLM2)
    calibrated(model)  # as a served worker does at load
    return model


@pytest.fixture(scope="module")
def classifier():
    if not (SENTIMENT / "config.json").exists():
        pytest.skip("build/models/sentiment is made by bin/setup")
    return load_model(SENTIMENT)


# --- every count bounded, through a real TorchServe ---------------------------------------------

MANY = 10**9
# (archive, a request at the limit, the same over it, the field named, a word the message says)
BOUNDS = [
    (
        "smollm2-gradients",
        rag(attribution="contextcite", n_ablations=LIMITS.max_ablations - 16, dry_run=True),
        rag(attribution="contextcite", n_ablations=MANY, dry_run=True),
        "n_ablations",
        "max_ablations",
    ),
    (
        "smollm2-gradients",
        rag(attribution="contextcite", n_ablations=16, n_holdout=LIMITS.max_ablations - 16, dry_run=True),
        rag(attribution="contextcite", n_holdout=MANY),
        "n_holdout",
        "max_ablations",
    ),
    ("smollm2-gradients", rag(n_steps=200, dry_run=True), rag(n_steps=201), "n_steps", "max_n_steps"),
    (
        "smollm2-gradients",
        rag(n_steps="auto", max_n_steps=200, dry_run=True),
        rag(n_steps="auto", max_n_steps=MANY),
        "max_n_steps",
        "max_n_steps",
    ),
    (
        "smollm2-gradients",
        {"messages": RAG, "generate": {"max_new_tokens": LIMITS.max_new_tokens}, "dry_run": True},
        {"messages": RAG, "generate": {"max_new_tokens": MANY}},
        "generate.max_new_tokens",
        "max_new_tokens",
    ),
    (
        "smollm2-gradients",
        {"messages": RAG * 2, "continuation": "Hi.", "attribution": "occlusion", "dry_run": True},
        {"messages": [{"role": "user", "content": "Hi."}] * (MAX_MESSAGES + 1), "continuation": "Hi."},
        "messages",
        "fixed limit",
    ),
    (
        "smollm2-gradients",
        {
            "text": " ".join(["a"] * MAX_SOURCES),
            "continuation": " c",
            "attribution": "occlusion",
            "dry_run": True,
            "sources": [{"id": f"s{k}", "start": 2 * k, "end": 2 * k + 1} for k in range(MAX_SOURCES)],
        },
        {
            "text": " ".join(["a"] * (MAX_SOURCES + 1)),
            "continuation": " c",
            "attribution": "occlusion",
            "sources": [{"id": f"s{k}", "start": 2 * k, "end": 2 * k + 1} for k in range(MAX_SOURCES + 1)],
        },
        "sources",
        "fixed limit",
    ),
    (
        "smollm2-gradients",
        {"text": "The capital of France is", "continuation": " Paris", "foil": " London", "n_steps": 2},
        {"text": "The capital of France is", "continuation": " Paris", "foil": [" London"] * (MAX_INDICES + 1)},
        "foil",
        "fixed limit",
    ),
    (
        "sentiment-gradients",
        {"text": REVIEW, "n_steps": 2},
        {"text": "a" * (LIMITS.max_text_chars + 1), "n_steps": 2},
        "text",
        "max_text_chars",
    ),
    (
        "smollm2-gradients",
        {"text": "Say", "continuation": " hi", "n_steps": 2},
        {"text": "Say", "continuation": " hi" * (LIMITS.max_text_chars // 3 + 1)},
        "continuation",
        "max_text_chars",
    ),
    (
        "minilm-attention",
        {"text": "The cat sat.", "layers": [0, 5], "heads": list(range(12)), "mask": [1, 2]},
        {"text": "The cat sat.", "layers": list(range(MAX_INDICES + 1))},
        "layers",
        "fixed limit",
    ),
    (
        "minilm-attention",
        {"text": "The cat sat.", "heads": list(range(12))},
        {"text": "The cat sat.", "heads": list(range(12 + 1))},
        "heads",
        "0..11",
    ),
    (
        "minilm-attention",
        {"text": "The cat sat.", "mask": [1]},
        {"text": "The cat sat.", "mask": list(range(MAX_INDICES + 1))},
        "mask",
        "fixed limit",
    ),
]


@pytest.mark.parametrize("archive, at_limit, over, field, says", BOUNDS, ids=[f"{b[0]}:{b[3]}" for b in BOUNDS])
def test_each_bound_answers_at_the_limit_and_refuses_over_it_within_a_second(
    torchserve, archive, at_limit, over, field, says
):
    answered = torchserve.post(archive, at_limit)
    assert answered.status == 200, answered.body[:300]
    started = time.perf_counter()
    refused = torchserve.post(archive, over)
    seconds = time.perf_counter() - started
    assert refused.status in (400, 413), refused.body[:300]
    error = refused.json()
    assert error["field"] == field and says in error["message"], error
    assert seconds < 1.0, f"refused after {seconds:.2f} s"


def test_a_dry_run_with_the_largest_counts_answers_in_under_a_second(torchserve):
    largest = [
        rag(attribution="contextcite", n_ablations=LIMITS.max_ablations - 16, dry_run=True),
        rag(n_steps="auto", dry_run=True),
        {"messages": RAG, "generate": {"max_new_tokens": LIMITS.max_new_tokens}, "n_steps": 200, "dry_run": True},
        rag(attribution="occlusion", unit="token", dry_run=True),
    ]
    for body in largest:
        started = time.perf_counter()
        r = torchserve.post("smollm2-gradients", body)
        seconds = time.perf_counter() - started
        assert r.status == 200 and r.json()["forwards"] >= 1, r.body[:300]
        assert seconds < 1.0, f"{body.get('attribution', 'integrated_gradients')}: {seconds:.2f} s"


# --- the deadline -------------------------------------------------------------------------------


def test_a_request_past_the_deadline_gets_a_503_and_the_same_worker_answers_the_next(torchserve):
    """deadline-gradients: the sentiment model with deadline_seconds 2 (responseTimeout 30)."""
    before = [w["pid"] for w in torchserve.workers("deadline-gradients")]
    started = time.perf_counter()
    r = torchserve.post("deadline-gradients", {"text": REVIEW * 2, "n_steps": 500})
    seconds = time.perf_counter() - started
    error = r.json()
    assert r.status == 503 and error["type"] == "Timeout", r.body[:300]
    assert error["deadline_seconds"] == DEADLINE_SECONDS and error["seconds"] >= DEADLINE_SECONDS
    assert "of" in error["progress"] and '"n_steps": 16' in error["cheaper"]
    assert seconds < DEADLINE_TIMEOUT / 2, f"answered after {seconds:.1f} s"
    ok = torchserve.post("deadline-gradients", {"text": "A fine film.", "n_steps": 8})
    assert ok.status == 200, ok.body[:300]
    assert [w["pid"] for w in torchserve.workers("deadline-gradients")] == before
    print(f"stopped at the deadline, answered after {seconds:.2f} s ({error['progress']})")


@pytest.mark.parametrize(
    "body",
    [
        rag(n_steps=8),
        rag(n_steps="auto", max_n_steps=30),
        rag(attribution="occlusion"),
        rag(attribution="contextcite", n_ablations=8, n_holdout=0),
        {"text": "The capital of France is", "generate": {"max_new_tokens": 4}, "n_steps": 4},
    ],
    ids=["ig", "ig-auto", "occlusion", "contextcite", "generate"],
)
def test_every_continuation_pass_stops_at_its_deadline(lm, body):
    with deadline(0.0), pytest.raises(DeadlineError) as stopped:
        explain_gradients(lm, body)
    error = stopped.value
    assert error.code == 503 and error.type == "Timeout" and " of " in error.progress
    assert error.to_json()["progress"] == error.progress
    explain_gradients(lm, {**body, "dry_run": True})  # no deadline outside the block


@pytest.mark.parametrize(
    "body", [{"text": REVIEW, "n_steps": 8}, {"text": REVIEW, "n_steps": "auto"}], ids=["fixed", "auto"]
)
def test_a_classifier_pass_stops_at_its_deadline(classifier, body):
    with deadline(0.0), pytest.raises(DeadlineError):
        explain_gradients(classifier, body)


def test_shipped_configs_keep_the_deadline_below_the_response_timeout():
    configs = sorted((ROOT / "deploy").glob("*.yaml")) + [ROOT / "deploy/kserve/gpu-model-config.yaml"]
    assert len(configs) >= 5
    for path in configs:
        config = yaml.safe_load(path.read_text())
        settings = worker_settings(Settings.from_mapping(config.get("handler")), config)
        assert settings.deadline_seconds < config["responseTimeout"], path
        assert settings.max_estimated_seconds <= settings.deadline_seconds, path


def test_a_deadline_at_or_past_the_response_timeout_fails_the_load():
    with pytest.raises(ValueError, match="deadline_seconds"):
        worker_settings(Settings(deadline_seconds=60), {"responseTimeout": 60})


def test_a_timeout_is_not_resent_by_the_client():
    import httpx

    from exformer.client.http import resendable

    timeout = DeadlineError(2.1, 2.0, "3 of 50 path points done", ['"n_steps": 16'])
    answer = httpx.Response(503, json=timeout.to_json())
    assert not resendable(answer)
    assert resendable(httpx.Response(503, json={"code": 503, "type": "ServiceUnavailable", "message": "busy"}))
    again = RequestError.from_json(timeout.to_json())
    assert isinstance(again, DeadlineError) and again.message == timeout.message


# --- seeds --------------------------------------------------------------------------------------


def test_seed_at_the_schemas_maximum_answers_under_every_method(lm, classifier):
    top = 2**32 - 1
    for body in (
        rag(attribution="contextcite", n_ablations=8, n_holdout=2, seed=top),
        rag(attribution="occlusion", seed=top),
        rag(n_steps=4, baseline="rand-norm", seed=top),
    ):
        explain_gradients(lm, body)
    explain_gradients(classifier, {"text": REVIEW, "n_steps": 4, "baseline": "rand-unif", "seed": top})


def test_masks_are_the_context_cite_packages_where_its_seeds_are_valid():
    def packages(seed, k, n=12, p=0.5):  # context_cite's ablation masks: RandomState(seed + k)
        return np.random.RandomState(seed + k).choice([False, True], size=n, p=[1 - p, p])

    for seed in (0, 7, 2**32 - 4):
        masks = contextcite_masks(12, 8, 0.5, seed)
        valid = [k for k in range(8) if seed + k <= 2**32 - 1]
        for k in valid:
            assert (masks[k] == packages(seed, k)).all()
        assert (contextcite_masks(12, 8, 0.5, seed) == masks).all()  # reproducible past the package's range too


# --- errors name what to fix --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, field, says",
    [
        ({"generate": {"max_new_tokens": 0}}, "generate.max_new_tokens", "greater than or equal to 1"),
        ({"generate": {"max_new_tokens": True}}, "generate.max_new_tokens", "integer"),
        ({"generate": {"max_new_tokens": 2.5}}, "generate.max_new_tokens", "integer"),
        ({"generate": {}}, "generate.max_new_tokens", "required"),
        ({"generate": {"max_new_tokens": 3, "temperature": 1.0}}, "generate.temperature", "unknown field"),
        ({"tolerance": float("nan"), "n_steps": "auto"}, "tolerance", "NaN"),
        ({"continuation": " x", "dry_run": True, "text": None}, "text", "null"),
        ({"dry_run": True}, "dry_run", "continuation"),
    ],
)
def test_errors_name_the_nested_field_and_what_was_sent(body, field, says):
    error = parse(GradientsRequest, {"text": "a", **body})
    assert isinstance(error, RequestError) and error.field == field and says in error.message, error


def test_a_nan_in_the_body_is_named_by_its_field(torchserve):
    r = torchserve.post("sentiment-gradients", b'{"text": "a", "n_steps": "auto", "tolerance": NaN}')
    assert r.status == 400 and r.json()["field"] == "tolerance" and "NaN" in r.json()["message"], r.body


def test_messages_to_a_classifier_are_refused_naming_messages(torchserve):
    r = torchserve.post("sentiment-gradients", {"messages": RAG, "continuation": "x"})
    assert r.status == 400 and r.json()["field"] == "messages", r.body
    assert "causal LM" in r.json()["message"]


def test_a_conversation_of_the_most_messages_the_contract_takes_is_valid():
    at_limit = {"messages": [{"role": "user", "content": "Hi."}] * MAX_MESSAGES, "continuation": "Hi."}
    assert isinstance(parse(GradientsRequest, at_limit), GradientsRequest)


def test_occlusion_past_max_ablations_is_refused_before_it_runs(lm):
    import dataclasses

    few = dataclasses.replace(lm, settings=Settings(max_ablations=8))
    started = time.perf_counter()
    with pytest.raises(RequestError) as refused:
        explain_gradients(few, rag(attribution="occlusion", unit="token"))
    assert refused.value.code == 413 and refused.value.field == "unit" and "max_ablations (8)" in refused.value.message
    assert time.perf_counter() - started < 1.0
    assert explain_gradients(few, rag(attribution="occlusion"))["forwards"] == 3  # two sources: within the limit
