"""`dtype`: bf16 autocast only where the device computes bf16 natively, else float32; an
explicit bfloat16 where it would be emulated (~34x slower) fails the load saying why; every
gradients response says which dtype computed it.

The capability is mocked where torch and the kernel report it (torch's CPU capability,
/proc/cpuinfo's flags), never in our code; the served test sets ATEN_CPU_CAPABILITY=avx2,
which makes torch itself report a CPU without AVX-512 kernels.
"""

import os

import numpy as np
import pytest
import torch

import exformer.core.loading
from support import torchserve as ts
from exformer import explain_gradients, load_model

AMX = "fpu sse2 avx2 avx512f avx512bw amx_bf16 amx_tile"
AVX512_BF16 = "fpu sse2 avx2 avx512f avx512bw avx512_bf16"
AVX512 = "fpu sse2 avx2 avx512f avx512bw"
AVX2 = "fpu sse2 avx2 fma"


@pytest.fixture
def cpu(monkeypatch, tmp_path):
    """cpu(capability, flags): torch and /proc/cpuinfo describe that CPU from now on."""

    def describe(capability: str, flags: str):
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        monkeypatch.setattr(exformer.core.loading, "CPUINFO", cpuinfo)

    return describe


@pytest.mark.parametrize("capability,flags,expected", [
    ("AVX512", AMX, "bfloat16"),
    ("AVX512", AVX512_BF16, "bfloat16"),
    ("AVX512", AVX512, "float32"),  # AVX-512 without bf16 instructions
    ("AVX2", AMX, "float32"),  # torch dispatching to its AVX2 kernels (ATEN_CPU_CAPABILITY=avx2)
    ("AVX2", AVX2, "float32"),  # this project's CI machine
])
def test_auto_is_bf16_only_where_the_cpu_computes_it_natively(cpu, tiny_model_dir, capability, flags, expected):
    cpu(capability, flags)
    loaded = load_model(tiny_model_dir("bert", classifier=True), "tiny")
    assert loaded.settings.dtype == "auto" and loaded.dtype == expected


def test_explicit_float32_stays_float32_where_bf16_is_native(cpu, tiny_model_dir):
    cpu("AVX512", AMX)
    assert load_model(tiny_model_dir("bert", classifier=True), "tiny", {"dtype": "float32"}).dtype == "float32"


def test_explicit_bfloat16_where_not_native_fails_the_load_saying_why(cpu, tiny_model_dir):
    cpu("AVX2", AVX2)
    with pytest.raises(ValueError) as error:
        load_model(tiny_model_dir("bert", classifier=True), "tiny", {"dtype": "bfloat16"})
    message = str(error.value)
    assert message.startswith("handler setting 'dtype': bfloat16 needs native bf16")
    assert "capability AVX2" in message and "amx_bf16" in message and "34x slower" in message


def test_explicit_bfloat16_loads_where_native(cpu, tiny_model_dir):
    cpu("AVX512", AVX512_BF16)
    assert load_model(tiny_model_dir("bert", classifier=True), "tiny", {"dtype": "bfloat16"}).dtype == "bfloat16"


def test_every_gradients_response_says_which_dtype_computed_it(cpu, tiny_model_dir):
    """And it is the one that computed it: bf16 autocast rounds the attributions."""
    answers = {}
    for capability, flags in (("AVX2", AVX2), ("AVX512", AMX)):
        cpu(capability, flags)
        loaded = load_model(tiny_model_dir("bert", classifier=True), "tiny")
        answers[loaded.dtype] = explain_gradients(loaded, "a fine film", n_steps=4)
    assert {dtype: a["dtype"] for dtype, a in answers.items()} == {"float32": "float32", "bfloat16": "bfloat16"}
    fp32, bf16 = (np.array(answers[d]["attributions"]["raw"]) for d in ("float32", "bfloat16"))
    assert not np.array_equal(fp32, bf16)
    np.testing.assert_allclose(bf16, fp32, atol=0.05 * np.abs(fp32).max())


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU worker is given a GPU, where bf16 may be native")
def test_served_explicit_bfloat16_without_native_bf16_fails_the_workers_load_saying_why(
        tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")  # torch in the worker reports an AVX2 CPU
    config = tmp_path / "bf16.yaml"
    config.write_text("minWorkers: 1\nmaxWorkers: 1\nhandler:\n  dtype: bfloat16\n")
    mar = ts.archive("tiny-bf16", "gradients", tiny_model_dir("bert", classifier=True), config, tmp_path)
    offset = 110 + int(os.environ.get("EXFORMER_TEST_PORT_OFFSET", "0"))  # beside the session's server
    with ts.serving(tmp_path / "server", {"tiny-bf16": mar}, port_offset=offset, wait=False) as server:
        line = ts.load_failure(server, "archive tiny-bf16: handler setting 'dtype'")
        assert line is not None, "no log line named the dtype setting"
        assert "needs native bf16" in line and "capability AVX2" in line and "34x slower" in line
        assert not [w for w in server.workers("tiny-bf16") if w["status"] == "READY"]
