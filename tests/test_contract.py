"""The contract is one set of pydantic models: the committed schema is what they generate,
real served answers validate against them, and the package stands alone (no TorchServe)."""

import os
import subprocess
import sys

import pytest

from exformer.contract import AttentionResponse, ErrorResponse, GradientsResponse, ModelDetailsResponse
from exformer.contract.schema import SCHEMA_PATH, schema_text
from support import torchserve as ts


def test_committed_schema_is_what_the_models_generate():
    assert SCHEMA_PATH.read_text() == schema_text(), "run: .venv/bin/python -m exformer.contract.schema"


def test_exformer_imports_from_any_directory_without_torchserve(tmp_path):
    code = (
        "import sys, exformer; from exformer import load_model, explain_attention, explain_gradients; "
        "print(exformer.__file__); sys.exit(any(m == 'ts' or m.startswith('ts.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(os.path.join("exformer", "__init__.py"))


@pytest.mark.parametrize(
    "model,body,response_model",
    [
        ("minilm-attention", {"text": "The cat sat on the mat."}, AttentionResponse),
        (
            "minilm-attention",
            {"text": "The cat sat.", "text_pair": "It sat.", "encoding": "float16-base64"},
            AttentionResponse,
        ),
        ("minilm-attention", {}, ModelDetailsResponse),
        ("smollm2-attention", {"text": "The capital of France is", "layers": [0]}, AttentionResponse),
        ("sentiment-attention", {"text": "A fine film.", "heads": [1, 2]}, AttentionResponse),
        ("sentiment-gradients", {"text": "A fine film.", "n_steps": 8}, GradientsResponse),
        ("smollm2-gradients", {}, ModelDetailsResponse),
        (
            "sentiment-gradients",
            {"text": "A fine film.", "n_steps": 4, "return": ["intermediate_gradients", "intermediates"]},
            GradientsResponse,
        ),
        (
            "smollm2-gradients",
            {"text": "The capital of France is", "target": " Paris", "n_steps": 4},
            GradientsResponse,
        ),
        ("minilm-attention", {"text": "a", "layers": [99]}, ErrorResponse),
        ("sentiment-gradients", {"text": "a", "n_steps": True}, ErrorResponse),
    ],
)
def test_served_answers_validate_against_the_response_models(torchserve, model, body, response_model):
    r = torchserve.post(model, body)
    assert (r.status == 200) == (response_model is not ErrorResponse), r.body[:300]
    response_model.model_validate_json(r.body)


@pytest.mark.served  # its own TorchServe
def test_bad_handler_settings_fail_the_workers_load_naming_setting_and_archive(tmp_path, tiny_model_dir):
    config = tmp_path / "bad.yaml"
    config.write_text("minWorkers: 1\nmaxWorkers: 1\nhandler:\n  trim_heap_mb: 64MB\n")
    mar = ts.archive("tiny-bad-settings", "attention", tiny_model_dir("bert"), config, tmp_path)
    offset = 100 + int(os.environ.get("EXFORMER_TEST_PORT_OFFSET", "0"))  # beside the session's server
    with ts.serving(tmp_path / "server", {"tiny-bad-settings": mar}, port_offset=offset, wait=False) as server:
        line = ts.load_failure(server, "archive tiny-bad-settings: handler setting")
        assert line is not None, "no log line named the bad setting"
        assert "'trim_heap_mb'" in line and '"64MB"' in line
        assert not [w for w in server.workers("tiny-bad-settings") if w["status"] == "READY"]
