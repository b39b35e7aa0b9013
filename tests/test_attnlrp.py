"""AttnLRP ("attribution": "attnlrp", exformer.core.lrp): each rule on hand-built tensors against
values computed by hand; the rules confined to one model object and one pass; every row equal to
lxt 2.1's (the authors' package, run by bench/lxt_oracle.py with transformers 4.53.3 from
build/lxt-site, which bin/test installs) within 1e-4 of the row's largest |value| on SmolLM2 (a
plain and a chat continuation, the whole answer's Σ log p) and on the sentiment BERT; a family the
rules do not cover is refused naming `attribution`.
"""

import json
import subprocess
import sys

import pytest
import torch
from torch.nn import functional as F
from transformers import AutoModelForCausalLM
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama import modeling_llama

from exformer import RequestError, explain_gradients, load_model
from exformer.core.lrp import FAMILIES, attention, attnlrp, divide_gradient, identity_rule
from support.rag import RAG
from tiny_models import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")

SITE = ROOT / "build" / "lxt-site"
ORACLE = ROOT / "bench" / "lxt_oracle.py"
SMOLLM2, SENTIMENT = ROOT / "build/models/smollm2", ROOT / "build/models/sentiment"
ROW_TOLERANCE = 1e-4  # of a row's largest |value|: the bound; both run float32 on CPU


def close(actual, expected, rtol=ROW_TOLERANCE):
    actual, expected = torch.as_tensor(actual).double(), torch.as_tensor(expected).double()
    torch.testing.assert_close(actual, expected, rtol=0, atol=rtol * float(expected.abs().max()))


# --- each rule by hand ----------------------------------------------------------------------------


def test_the_identity_rule_passes_relevance_through_an_activation_element_by_element():
    z = torch.tensor([-2.0, -0.5, 0.3, 1.7], requires_grad=True)
    g = torch.tensor([1.0, 2.0, -1.0, 0.5])
    y = identity_rule(F.silu, z)
    y.backward(g)
    torch.testing.assert_close(y, F.silu(z))  # the forward is the activation's
    torch.testing.assert_close(z * z.grad, F.silu(z).detach() * g)  # R_in = f(z)·g = R_out, per element


def test_the_uniform_rule_gives_each_operand_of_a_product_half_its_relevance():
    a = torch.tensor([1.5, -2.0, 0.25], requires_grad=True)
    b = torch.tensor([-1.0, 3.0, 4.0], requires_grad=True)
    g = torch.tensor([0.5, 1.0, -2.0])
    out = divide_gradient(a * b, 2)
    out.backward(g)
    relevance = (a * b).detach() * g
    torch.testing.assert_close(a * a.grad, relevance / 2)
    torch.testing.assert_close(b * b.grad, relevance / 2)


def _qkv(n_keys: int):
    torch.manual_seed(0)
    q = torch.randn(1, 1, 1, 3, requires_grad=True)  # [batch, heads, positions, head size]
    k = torch.randn(1, 1, n_keys, 3, requires_grad=True)
    v = torch.randn(1, 1, n_keys, 3, requires_grad=True)
    return q, k, v


def test_attention_with_one_key_gives_the_value_half_and_the_scores_nothing():
    """softmax over one score is 1 whatever the score: the softmax rule gives q and k nothing, A·V's
    uniform rule gives v half of the output's relevance (the other half, A's, is absorbed)."""
    q, k, v = _qkv(1)
    g = torch.tensor([0.3, -1.0, 2.0])
    out, _ = attention(None, q, k, v, None, scaling=1.0)
    out.backward(g.view(1, 1, 1, 3))
    torch.testing.assert_close(out, v.transpose(1, 2))
    torch.testing.assert_close((v * v.grad).sum(), (v.detach() * g).sum() / 2)
    assert float(q.grad.abs().max()) == 0 and float(k.grad.abs().max()) == 0


def test_attention_with_two_keys_follows_the_softmax_rule_by_hand():
    """x_j = q·k_j, s = softmax(x), out = Σ s_j v_j. Relevance of A's half: R_s_j = s_j (v_j·g) / 2;
    the softmax rule: R_x_j = x_j (R_s_j − s_j Σ R_s); Q·Kᵀ's uniform rule: q and k_j share R_x_j
    equally; v_j: s_j (v_j·g) / 2."""
    q, k, v = _qkv(2)
    g = torch.tensor([0.3, -1.0, 2.0])
    out, _ = attention(None, q, k, v, None, scaling=1.0)
    out.backward(g.view(1, 1, 1, 3))
    x = (k[0, 0] @ q[0, 0, 0]).detach()  # [2]
    s = x.softmax(-1)
    vg = v[0, 0].detach() @ g  # [2]
    r_s = s * vg / 2
    r_x = x * (r_s - s * r_s.sum())
    torch.testing.assert_close((q * q.grad).sum(), r_x.sum() / 2)
    torch.testing.assert_close((k * k.grad).sum(-1)[0, 0], r_x / 2)
    torch.testing.assert_close((v * v.grad).sum(-1)[0, 0], s * vg / 2)


def _module_relevance(model, kind, run):
    """(R into, R out of) each module of `kind` in one backward: its input is cloned where it enters,
    so the relevance in is the module's own path's (not the residual stream's)."""
    seen = []

    def before(module, args):
        x = args[0].clone()
        x.retain_grad()
        seen.append([x])
        return (x, *args[1:])

    def after(module, args, output):
        out = output[0] if isinstance(output, tuple) else output
        out.retain_grad()
        seen[-1].append(out)

    handles = []
    for module in model.modules():
        if isinstance(module, kind):
            handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return [((x * x.grad).detach(), (y * y.grad).detach()) for x, y in seen]


def test_rms_norms_pass_relevance_per_element_and_gated_mlps_conserve_it(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), attn_implementation="eager").eval()
    ids = torch.tensor([[5, 17, 230, 41, 9]])

    def run():
        with attnlrp(model):
            x = model.get_input_embeddings()(ids).detach().requires_grad_()
            model(inputs_embeds=x, use_cache=False).logits[0, -1, 7].backward()

    norms = _module_relevance(model, modeling_llama.LlamaRMSNorm, run)
    assert len(norms) == 2 * model.config.num_hidden_layers + 1
    for r_in, r_out in norms:
        close(r_in, r_out, 1e-5)
    mlps = _module_relevance(model, modeling_llama.LlamaMLP, run)
    assert len(mlps) == model.config.num_hidden_layers
    for r_in, r_out in mlps:
        close(r_in.sum(), r_out.sum(), 1e-5)


# --- one model object, one pass -------------------------------------------------------------------


def _gradient_x_input(model, ids):
    x = model.get_input_embeddings()(ids).detach().requires_grad_()
    model(inputs_embeds=x, use_cache=False).logits[0, -1, 7].backward()
    return (x * x.grad).sum(-1).detach()


def test_the_rules_change_one_model_object_for_one_pass(tiny_model_dir):
    """Another model in the process (another worker's, or the attention view's) computes plain
    gradients while the rules are on; the model itself does again once they are off; no class,
    attention function or mask function of transformers is replaced."""
    path = tiny_model_dir("llama")
    ruled, other = (AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval() for _ in "ab")
    ids = torch.tensor([[5, 17, 230, 41, 9]])
    plain = _gradient_x_input(ruled, ids)
    classes = {cls: dict(vars(cls)) for cls in (modeling_llama.LlamaRMSNorm, modeling_llama.LlamaMLP, torch.nn.SiLU)}
    functions, masks = dict(ALL_ATTENTION_FUNCTIONS._global_mapping), dict(ALL_MASK_ATTENTION_FUNCTIONS._global_mapping)
    with attnlrp(ruled):
        relevance = _gradient_x_input(ruled, ids)
        close(_gradient_x_input(other, ids), plain, 1e-6)
    assert float((relevance - plain).abs().max()) > 1e-3 * float(plain.abs().max())  # the rules did act
    close(_gradient_x_input(ruled, ids), plain, 1e-6)
    assert all("forward" not in vars(module) for module in ruled.modules())
    assert ruled.config._attn_implementation == "eager"
    assert {cls: dict(vars(cls)) for cls in classes} == classes
    assert {k: v for k, v in ALL_ATTENTION_FUNCTIONS._global_mapping.items() if k in functions} == functions
    assert {k: v for k, v in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping.items() if k in masks} == masks


def test_the_rules_are_put_back_after_a_failing_pass(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), attn_implementation="eager").eval()
    with pytest.raises(RuntimeError), attnlrp(model):
        raise RuntimeError("a pass that fails half way")
    assert all("forward" not in vars(module) for module in model.modules())
    assert model.config._attn_implementation == "eager"


# --- the oracle: lxt 2.1 --------------------------------------------------------------------------


def oracle(tmp_path, case: dict) -> dict:
    if not (SITE / ".complete").exists():
        pytest.skip("build/lxt-site (lxt 2.1 with transformers 4.53.3) is installed by bin/test")
    path, out = tmp_path / "case.json", tmp_path / "out.json"
    path.write_text(json.dumps(case))
    subprocess.run(
        [sys.executable, str(ORACLE), "--site", str(SITE), "--case", str(path), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def lm():
    return load_model(SMOLLM2)


def _oracle_case(answer, model_dir=SMOLLM2) -> dict:
    tokens = answer["tokens"]
    return {
        "model_dir": str(model_dir),
        "prompt_ids": [t["id"] for t in tokens if not t["target"]],
        "target_ids": [t["id"] for t in tokens if t["target"]],
    }


@pytest.mark.parametrize(
    "body",
    [
        {"text": "The capital of France is", "continuation": " Paris, the city of light."},
        {"messages": RAG[:2], "continuation": "It opened in 1889."},
    ],
    ids=["plain", "chat"],
)
def test_each_row_equals_lxt_on_smollm2(lm, tmp_path, body):
    ours = explain_gradients(lm, {**body, "attribution": "attnlrp", "continuation_baseline": "replace"})
    theirs = oracle(tmp_path, _oracle_case(ours))
    assert len(ours["targets"]) == len(theirs["relevance"]) > 1
    for row, expected, logit in zip(ours["targets"], theirs["relevance"], theirs["target_logits"]):
        close(row["attributions"]["raw"], expected)
        assert row["score"] == pytest.approx(logit, rel=1e-5)  # F = the target's logit
        assert row["convergence_delta"] is None  # not conservative: no delta to judge


def test_the_whole_answer_equals_lxt_on_its_log_probability(lm, tmp_path):
    """Σ_t log p(y_t): relevance is linear in what is explained, so the whole answer's row is the
    sum of the rows of log p, which the oracle gets from one backward."""
    body = {"text": "The capital of France is", "continuation": " Paris, the city of light."}
    ours = explain_gradients(
        lm, {**body, "attribution": "attnlrp", "continuation_baseline": "replace", "score": "log_probability"}
    )
    theirs = oracle(tmp_path, _oracle_case(ours))
    whole = ours["continuation_attributions"]["attributions"]["raw"]
    expected = theirs["answer_relevance"]
    close(whole[: len(expected)], expected)


def test_the_classifier_row_equals_lxt_on_the_sentiment_model(tmp_path):
    model = load_model(SENTIMENT)
    ours = explain_gradients(model, {"text": "A dull, lifeless film.", "attribution": "attnlrp", "target": 0})
    theirs = oracle(
        tmp_path, {"model_dir": str(SENTIMENT), "input_ids": [t["id"] for t in ours["tokens"]], "target": 0}
    )
    close(ours["attributions"]["raw"], theirs["relevance"])


# --- what it covers ---------------------------------------------------------------------------------

COVERED = [("llama", False), ("qwen2", False), ("qwen3", False), ("gemma3", False), ("gpt2", False)]
COVERED += [(family, True) for family in ("llama", "qwen2", "qwen3", "gemma3", "gpt2", "bert")]


def test_the_covered_families_are_the_ones_checked_here():
    types = {"gemma3": "gemma3_text"}
    assert {types.get(family, family) for family, _ in COVERED} == FAMILIES


@pytest.mark.parametrize(("family", "classifier"), COVERED, ids=[f"{f}-{'cls' if c else 'lm'}" for f, c in COVERED])
def test_every_row_equals_lxt_on_a_tiny_model_of_each_covered_family(tiny_model_dir, tmp_path, family, classifier):
    """Tiny random models of each family lxt 2.1 covers, causal LMs on a 3-token continuation and
    classifiers (which read the last token, or BERT's [CLS]); the oracle loads the same weights
    under transformers 4.53 (bench/lxt_oracle.py converts the config)."""
    path = tiny_model_dir(family, classifier)
    model = load_model(path)
    if classifier:
        ours = explain_gradients(model, {"text": "A warm, funny film.", "attribution": "attnlrp", "target": 1})
        case = {"model_dir": str(path), "input_ids": [t["id"] for t in ours["tokens"]], "target": 1}
        close(ours["attributions"]["raw"], oracle(tmp_path, case)["relevance"])
        return
    body = {"text": "The capital of France is", "continuation": " Paris, the"}
    ours = explain_gradients(model, {**body, "attribution": "attnlrp", "continuation_baseline": "replace"})
    theirs = oracle(tmp_path, _oracle_case(ours, path))
    assert len(theirs["relevance"]) == len(ours["targets"]) == 3
    for row, expected in zip(ours["targets"], theirs["relevance"]):
        close(row["attributions"]["raw"], expected)


@pytest.mark.parametrize("family", ["roberta", "distilbert", "albert", "xlnet"])
def test_a_family_the_rules_do_not_cover_is_refused_naming_attribution(tiny_model_dir, family):
    assert family not in FAMILIES
    model = load_model(tiny_model_dir(family, True))
    with pytest.raises(RequestError) as refused:
        explain_gradients(model, {"text": "The capital of France is", "attribution": "attnlrp"})
    assert refused.value.field == "attribution" and family in str(refused.value)


@pytest.mark.parametrize("split", ["hooked", "offloaded"])
def test_a_dispatched_model_gets_the_same_relevance(tiny_model_dir, tmp_path, split):
    """Under accelerate's device hooks (a sharded model; "offloaded" keeps a block's weights on
    disk) the rules replace each module's inner forward, so the weights still arrive and the rows
    equal the whole model's; every forward is put back."""
    from test_sharding import SPLITS, dispatched

    model_dir = tiny_model_dir("llama")
    body = {"text": "Split it", "continuation": " three ways.", "attribution": "attnlrp"}
    whole = explain_gradients(load_model(model_dir), body)
    loaded = dispatched(model_dir, SPLITS[split], tmp_path)[0]
    before = [{k: m.__dict__.get(k) for k in ("forward", "_old_forward")} for m in loaded.model.modules()]
    split_answer = explain_gradients(loaded, body)
    assert [{k: m.__dict__.get(k) for k in ("forward", "_old_forward")} for m in loaded.model.modules()] == before
    assert [t["attributions"] for t in split_answer["targets"]] == [t["attributions"] for t in whole["targets"]]


def test_served_rows_equal_the_in_process_ones(torchserve, lm):
    """Through TorchServe's smollm2-gradients and sentiment-gradients workers: the same rows as in
    process, and the worker's next gradient × input answer is the one it gave before AttnLRP ran
    (the rules were confined to the pass)."""
    body = {"text": "The capital of France is", "continuation": " Paris, the", "attribution": "attnlrp"}
    r = torchserve.post("smollm2-gradients", body)
    assert r.status == 200, r.body[:300]
    served = json.loads(r.body)
    assert served["attribution"] == "attnlrp" and served["score"] == "logit"
    local = explain_gradients(lm, body)
    for row, expected in zip(served["targets"], local["targets"]):
        close(row["attributions"]["raw"], expected["attributions"]["raw"], 1e-5)
    plain = {"text": "A dull, lifeless film.", "attribution": "gradient_x_input"}
    before = torchserve.post("sentiment-gradients", plain)
    relevance = torchserve.post("sentiment-gradients", {"text": plain["text"], "attribution": "attnlrp"})
    after = torchserve.post("sentiment-gradients", plain)
    assert before.status == relevance.status == after.status == 200, relevance.body[:300]
    assert json.loads(after.body)["attributions"] == json.loads(before.body)["attributions"]
    assert json.loads(relevance.body)["attributions"] != json.loads(before.body)["attributions"]
