"""`dtype`: integrated gradients are float32 unless the archive's setting or the request asks for
bfloat16, on every CPU and GPU, so an answer does not depend on the machine it ran on; bfloat16
only where the device computes bf16 natively (an archive asking for it elsewhere fails its load,
a request asking for it is a 400 naming `dtype`); every gradients answer says which dtype
computed it.

The capability is mocked where torch and the kernel report it (torch's CPU capability,
/proc/cpuinfo's flags), never in our code; the served tests that need a CPU without native bf16
set ATEN_CPU_CAPABILITY=avx2, which makes torch itself report a CPU without AVX-512 kernels.
Everything else runs at the capability the machine has.
"""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import LayerIntegratedGradients

import exformer.core.loading
from exformer import RequestError, explain_gradients, load_model
from exformer.core.loading import bfloat16_not_native
from exformer.core.tokens import encode
from support import torchserve as ts

ROOT = Path(__file__).resolve().parent.parent
AMX = "fpu sse2 avx2 avx512f avx512bw amx_bf16 amx_tile"
AVX512_BF16 = "fpu sse2 avx2 avx512f avx512bw avx512_bf16"
AVX512 = "fpu sse2 avx2 avx512f avx512bw"
AVX2 = "fpu sse2 avx2 fma"
REVIEW = "A warm, funny and quietly moving film."
NOT_NATIVE_HERE = bfloat16_not_native(torch.device("cpu"))  # None: this machine computes bf16 natively


@pytest.fixture
def cpu(monkeypatch, tmp_path):
    """cpu(capability, flags): torch and /proc/cpuinfo describe that CPU from now on."""

    def describe(capability: str, flags: str):
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        monkeypatch.setattr(exformer.core.loading, "CPUINFO", cpuinfo)

    return describe


def raw(answer) -> np.ndarray:
    return np.array(answer["attributions"]["raw"])


# --- the default: float32 wherever it runs ------------------------------------------------------


@pytest.mark.parametrize(
    "capability,flags,native",
    [
        ("AVX512", AMX, True),
        ("AVX512", AVX512_BF16, True),
        ("AVX512", AVX512, False),  # AVX-512 without bf16 instructions
        ("AVX2", AMX, False),  # torch dispatching to its AVX2 kernels (ATEN_CPU_CAPABILITY=avx2)
        ("AVX2", AVX2, False),
    ],
)
def test_auto_is_float32_on_every_cpu_native_bf16_or_not(cpu, tiny_model_dir, capability, flags, native):
    cpu(capability, flags)
    loaded = load_model(tiny_model_dir("bert", classifier=True), "tiny")
    assert loaded.settings.dtype == "auto" and loaded.default_dtype == "float32"
    assert loaded.native_bfloat16 is native
    assert explain_gradients(loaded, "a fine film", n_steps=4)["dtype"] == "float32"


def test_auto_is_float32_on_this_machine_as_it_is(tiny_model_dir):
    """No mock and no forced capability: torch's own, whatever this CPU has."""
    loaded = load_model(tiny_model_dir("bert", classifier=True), "tiny")
    assert loaded.native_bfloat16 is (NOT_NATIVE_HERE is None)
    assert explain_gradients(loaded, "a fine film", n_steps=4)["dtype"] == "float32"


def test_explicit_float32_stays_float32_where_bf16_is_native(cpu, tiny_model_dir):
    cpu("AVX512", AMX)
    assert load_model(tiny_model_dir("bert", classifier=True), "tiny", {"dtype": "float32"}).default_dtype == "float32"


def test_explicit_bfloat16_where_not_native_fails_the_load_saying_why(cpu, tiny_model_dir):
    cpu("AVX2", AVX2)
    with pytest.raises(ValueError) as error:
        load_model(tiny_model_dir("bert", classifier=True), "tiny", {"dtype": "bfloat16"})
    message = str(error.value)
    assert message.startswith("handler setting 'dtype': bfloat16 needs native bf16")
    assert "capability AVX2" in message and "amx_bf16" in message and "34x slower" in message


def test_explicit_bfloat16_setting_is_the_default_where_native(cpu, tiny_model_dir):
    cpu("AVX512", AVX512_BF16)
    loaded = load_model(tiny_model_dir("bert", classifier=True), "tiny", {"dtype": "bfloat16"})
    assert loaded.default_dtype == "bfloat16"
    assert explain_gradients(loaded, "a fine film", n_steps=4)["dtype"] == "bfloat16"


# --- a request's dtype --------------------------------------------------------------------------


def test_a_request_may_ask_for_bfloat16_where_native_and_the_answer_is_computed_in_it(cpu, tiny_model_dir):
    """Said and done: bf16 autocast rounds the attributions."""
    cpu("AVX512", AMX)
    loaded = load_model(tiny_model_dir("bert", classifier=True), "tiny")
    fp32 = explain_gradients(loaded, "a fine film", n_steps=4)
    bf16 = explain_gradients(loaded, "a fine film", n_steps=4, dtype="bfloat16")
    assert (fp32["dtype"], bf16["dtype"]) == ("float32", "bfloat16")
    assert not np.array_equal(raw(fp32), raw(bf16))
    np.testing.assert_allclose(raw(bf16), raw(fp32), atol=0.05 * np.abs(raw(fp32)).max())


def test_a_request_for_float32_overrides_an_archives_bfloat16(cpu, tiny_model_dir):
    cpu("AVX512", AMX)
    model_dir = tiny_model_dir("bert", classifier=True)
    bf16_archive = load_model(model_dir, "tiny", {"dtype": "bfloat16"})
    asked = explain_gradients(bf16_archive, "a fine film", n_steps=4, dtype="float32")
    default = explain_gradients(load_model(model_dir, "tiny"), "a fine film", n_steps=4)
    assert asked["dtype"] == "float32"
    np.testing.assert_array_equal(raw(asked), raw(default))


def test_a_request_for_bfloat16_where_not_native_is_a_400_naming_dtype_and_why(cpu, tiny_model_dir):
    cpu("AVX2", AMX)
    loaded = load_model(tiny_model_dir("bert", classifier=True), "tiny")
    with pytest.raises(RequestError) as error:
        explain_gradients(loaded, "a fine film", n_steps=4, dtype="bfloat16")
    assert error.value.code == 400 and error.value.field == "dtype"
    assert error.value.message.startswith('dtype: "bfloat16" needs native bf16')
    assert "capability AVX2" in error.value.message and "34x slower" in error.value.message


def test_a_continuation_answers_in_the_dtype_its_request_asked_for(cpu, tiny_model_dir):
    cpu("AVX512", AVX512_BF16)
    loaded = load_model(tiny_model_dir("llama"), "tiny-lm")
    body = {"text": "the cat sat on", "continuation": " the mat", "n_steps": 4}
    fp32, bf16 = explain_gradients(loaded, body), explain_gradients(loaded, {**body, "dtype": "bfloat16"})
    assert (fp32["dtype"], bf16["dtype"]) == ("float32", "bfloat16")
    rows = [np.concatenate([t["attributions"]["raw"] for t in a["targets"]]) for a in (fp32, bf16)]
    assert not np.array_equal(*rows)


def test_a_batch_of_requests_in_different_dtypes_answers_each_as_if_alone(cpu, tiny_model_dir):
    cpu("AVX512", AMX)
    loaded = load_model(tiny_model_dir("bert", classifier=True), "tiny")
    bodies = [
        {"text": "a fine film", "n_steps": 8},
        {"text": "a fine film", "n_steps": 8, "dtype": "bfloat16"},
        {"text": "a rather longer and duller one", "n_steps": 6, "dtype": "float32"},
    ]
    together = explain_gradients(loaded, bodies)  # one batch, as TorchServe hands it
    alone = [explain_gradients(loaded, body) for body in bodies]
    assert [a["dtype"] for a in together] == ["float32", "bfloat16", "float32"]
    for got, expected in zip(together, alone):
        np.testing.assert_allclose(raw(got), raw(expected), rtol=1e-4, atol=1e-5 * np.abs(raw(expected)).max())
    assert not np.array_equal(raw(together[0]), raw(together[1]))


# --- served -------------------------------------------------------------------------------------


def captum_sentiment(text: str, target: int, n_steps: int) -> np.ndarray:
    """captum's LayerIntegratedGradients on the word embeddings, float32: F = p(target), pad on
    the content tokens (special tokens kept, our default), Gauss–Legendre; per-token sums."""
    loaded = load_model(ROOT / "build/models/sentiment", "sentiment", {"dtype": "float32"})
    encoded = encode(loaded, text)
    ids, names = encoded.inputs["input_ids"], [k for k in encoded.inputs if k != "input_ids"]
    keep = torch.tensor(encoded.special)
    baseline = torch.where(keep, ids[0], loaded.tokenizer.pad_token_id)[None]

    def forward(input_ids, *rest):
        return loaded.model(input_ids=input_ids, **dict(zip(names, rest))).logits.softmax(-1)[:, target]

    lig = LayerIntegratedGradients(forward, loaded.model.get_input_embeddings())
    attributions = lig.attribute(
        ids,
        baseline,
        additional_forward_args=tuple(encoded.inputs[k] for k in names),
        n_steps=n_steps,
        method="gausslegendre",
    )
    return attributions[0].sum(-1).double().numpy()


def test_served_sentiment_attributions_equal_captums_in_float32_by_default(torchserve):
    body = {"text": REVIEW, "target": "positive", "baseline": "pad", "n_steps": 50, "method": "gausslegendre"}
    r = torchserve.post("sentiment-gradients", body)
    assert r.status == 200, r.body[:300]
    out = r.json()
    assert out["dtype"] == "float32"
    expected = captum_sentiment(REVIEW, out["target"]["index"], 50)
    got = raw(out)
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    gap = out["target"]["score"] - out["baseline"]["score"]
    assert abs(out["convergence_delta"]) < 1e-4 * abs(gap)


@pytest.mark.skipif(NOT_NATIVE_HERE is not None, reason=f"bf16 is not native here: {NOT_NATIVE_HERE}")
def test_served_request_for_bfloat16_answers_in_bfloat16_where_native(torchserve):
    body = {"text": REVIEW, "target": "positive", "baseline": "pad", "n_steps": 50}
    fp32 = torchserve.post("sentiment-gradients", body).json()
    r = torchserve.post("sentiment-gradients", {**body, "dtype": "bfloat16"})
    assert r.status == 200, r.body[:300]
    bf16 = r.json()
    assert (fp32["dtype"], bf16["dtype"]) == ("float32", "bfloat16")
    assert not np.array_equal(raw(fp32), raw(bf16))
    np.testing.assert_allclose(raw(bf16), raw(fp32), atol=0.05 * np.abs(raw(fp32)).max())


@pytest.fixture(scope="module")
def avx2_server(tmp_path_factory, tiny_model_dir):
    """A TorchServe whose torch runs its AVX2 kernels (no native bf16 on any CPU): an archive
    set to bfloat16, whose load fails, and one left at auto."""
    work = tmp_path_factory.mktemp("avx2")
    model_dir = tiny_model_dir("bert", classifier=True)
    bf16_config, auto_config = work / "bf16.yaml", work / "auto.yaml"
    bf16_config.write_text("minWorkers: 1\nmaxWorkers: 1\nhandler:\n  dtype: bfloat16\n")
    auto_config.write_text("minWorkers: 1\nmaxWorkers: 1\nhandler:\n  torch_threads: 1\n")
    archives = {
        "tiny-bf16": ts.archive("tiny-bf16", "gradients", model_dir, bf16_config, work),
        "tiny-avx2": ts.archive("tiny-avx2", "gradients", model_dir, auto_config, work),
    }
    offset = 110 + int(os.environ.get("EXFORMER_TEST_PORT_OFFSET", "0"))  # beside the session's server
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATEN_CPU_CAPABILITY", "avx2")  # torch in the workers reports an AVX2 CPU
        server = ts.start(work / "server", archives, port_offset=offset, wait=False)
    try:
        server.wait_ready("tiny-avx2")
        yield server
    finally:
        ts.stop(server)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU worker is given a GPU, where bf16 may be native")
def test_served_explicit_bfloat16_without_native_bf16_fails_the_workers_load_saying_why(avx2_server):
    line = ts.load_failure(avx2_server, "archive tiny-bf16: handler setting 'dtype'")
    assert line is not None, "no log line named the dtype setting"
    assert "needs native bf16" in line and "capability AVX2" in line and "34x slower" in line
    assert not [w for w in avx2_server.workers("tiny-bf16") if w["status"] == "READY"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU worker is given a GPU, where bf16 may be native")
def test_served_request_for_bfloat16_without_native_bf16_is_a_400_naming_dtype(avx2_server):
    r = avx2_server.post("tiny-avx2", {"text": "a fine film", "n_steps": 4, "dtype": "bfloat16"})
    assert r.status == 400, r.body[:300]
    error = r.json()
    assert error["field"] == "dtype" and error["message"].startswith('dtype: "bfloat16" needs native bf16')
    assert "capability AVX2" in error["message"]
    ok = avx2_server.post("tiny-avx2", {"text": "a fine film", "n_steps": 4})
    assert ok.status == 200 and ok.json()["dtype"] == "float32"
