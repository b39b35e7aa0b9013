"""KServe's v1 and v2 protocols, without Kubernetes: a real TorchServe started the way KServe's
TorchServe runtime starts it (from the directory bin/kserve-layout lays out, with
TS_SERVICE_ENVELOPE, token authorization on), driven by the kserve SDK's REST client and curl;
and the InferenceService manifests checked against the SDK's models."""

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from support import torchserve as ts

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import kserve_layout  # noqa: E402

OFFSET = int(os.environ.get("EXFORMER_TEST_PORT_OFFSET", "0"))
# KServe's ports are 8085 (inference), 8081 (management, loopback) and 8082 (metrics); the tests move them
# the way a pod could, through enable_envvars_config (TS_* variables), leaving the file as laid out.
PORTS = {"kserve": 19185 + OFFSET, "kservev2": 19195 + OFFSET}  # inference; +1..+4: the others
REVIEW = "A warm, funny and quietly moving film."


# --- a TorchServe as KServe starts it --------------------------------------------------------------


class KServeTorchServe:
    def __init__(self, workdir: Path, envelope: str, process, port: int):
        self.workdir, self.envelope, self.process = workdir, envelope, process
        self.url = f"http://127.0.0.1:{port}"
        self.management = f"http://127.0.0.1:{port + 1}"
        self.metrics_url = f"http://127.0.0.1:{port + 2}/metrics"

    def key(self, kind="inference") -> str:
        return json.loads((self.workdir / "key_file.json").read_text())[kind]["key"]

    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.key()}"}

    def post(self, path: str, body, headers=None) -> ts.Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/{path}",
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", **self.auth(), **(headers or {})},
        )
        return ts._send(request, 300)

    def curl(self, path: str, body: dict) -> tuple[int, dict]:
        """curl as a KServe user would call it; (status, JSON body)."""
        out = subprocess.run(
            [
                "curl",
                "-sS",
                "-w",
                "\n%{http_code}",
                "-H",
                "Content-Type: application/json",
                "-H",
                f"Authorization: Bearer {self.key()}",
                "-d",
                json.dumps(body),
                f"{self.url}/{path}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
        text, status = out.rsplit("\n", 1)
        return int(status), json.loads(text)

    def wait_ready(self, models, timeout=240):
        deadline = time.time() + timeout
        pending = set(models)
        while pending and time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"TorchServe exited; see {self.workdir}/logs")
            for model in list(pending):
                try:
                    request = urllib.request.Request(
                        f"{self.management}/models/{model}",
                        headers={"Authorization": f"Bearer {self.key('management')}"},
                    )
                    with urllib.request.urlopen(request, timeout=10) as r:
                        if any(w["status"] == "READY" for w in json.loads(r.read())[0]["workers"]):
                            pending.discard(model)
                except (urllib.error.URLError, ConnectionError, FileNotFoundError, KeyError, IndexError, ValueError):
                    pass
            time.sleep(0.5)
        if pending:
            raise TimeoutError(f"{sorted(pending)} not ready after {timeout} s; see {self.workdir}/logs")


def start_as_kserve(storage: Path, workdir: Path, envelope: str) -> KServeTorchServe:
    """`torchserve --model-store <storage>/model-store --ts-config <storage>/config/config.properties`
    with TS_SERVICE_ENVELOPE, as KServe's runtime runs it; ports moved by TS_* variables."""
    workdir.mkdir(parents=True)
    port = PORTS[envelope]
    env = ts.serving_env(
        workdir,
        TS_SERVICE_ENVELOPE=envelope,
        TS_INFERENCE_ADDRESS=f"http://127.0.0.1:{port}",
        TS_MANAGEMENT_ADDRESS=f"http://127.0.0.1:{port + 1}",
        TS_METRICS_ADDRESS=f"http://127.0.0.1:{port + 2}",
        TS_GRPC_INFERENCE_ADDRESS="127.0.0.1",
        TS_GRPC_MANAGEMENT_ADDRESS="127.0.0.1",
        TS_GRPC_INFERENCE_PORT=str(port + 3),
        TS_GRPC_MANAGEMENT_PORT=str(port + 4),
    )
    venv_bin = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
    process = subprocess.Popen(
        [
            str(venv_bin / "torchserve"),
            "--start",
            "--foreground",
            "--model-store",
            str(storage / "model-store"),
            "--ts-config",
            str(storage / "config/config.properties"),
        ],
        cwd=workdir,
        env=env,
        stdout=open(workdir / "torchserve.out", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return KServeTorchServe(workdir, envelope, process, port)


@pytest.fixture(scope="module")
def storage(tmp_path_factory, tiny_model_dir):
    """The storage directory KServe would download: tiny archives (one batching) and a real one."""
    work = tmp_path_factory.mktemp("kserve")
    config = work / "tiny.yaml"
    config.write_text(
        "minWorkers: 1\nmaxWorkers: 1\nbatchSize: 4\nmaxBatchDelay: 1000\n"
        "responseTimeout: 60\nhandler:\n  torch_threads: 1\n"
    )
    archives = {
        "tiny-attention": ts.archive("tiny-attention", "attention", tiny_model_dir("bert"), config, work),
        "tiny-gradients": ts.archive(
            "tiny-gradients", "gradients", tiny_model_dir("bert", classifier=True), config, work
        ),
        "sentiment-gradients": ROOT / "model_store/sentiment-gradients.mar",
    }
    return kserve_layout.lay_out(work / "storage", archives)


def _serving(storage, tmp_path_factory, envelope):
    server = start_as_kserve(storage, tmp_path_factory.mktemp(envelope) / "run", envelope)
    try:
        server.wait_ready(["tiny-attention", "tiny-gradients", "sentiment-gradients"])
        yield server
    finally:
        ts.stop(server)


@pytest.fixture(scope="module")
def v1(storage, tmp_path_factory):
    yield from _serving(storage, tmp_path_factory, "kserve")


@pytest.fixture(scope="module")
def v2(storage, tmp_path_factory):
    yield from _serving(storage, tmp_path_factory, "kservev2")


def sdk(protocol: str):
    from kserve import InferenceRESTClient, RESTConfig

    return InferenceRESTClient(RESTConfig(protocol=protocol, timeout=300, retries=0))


def run(coroutine):
    return asyncio.run(coroutine)


# --- the layout ------------------------------------------------------------------------------------


def test_layout_command_writes_config_and_model_store(tmp_path):
    out = subprocess.run(
        [str(ROOT / "bin/kserve-layout"), str(tmp_path / "s"), "sentiment-gradients"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "model-store/sentiment-gradients.mar" in out
    config = (tmp_path / "s/config/config.properties").read_text()
    props = dict(line.split("=", 1) for line in config.splitlines() if "=" in line and not line.startswith("#"))
    # the pod's front (exformer.serving.kserve_front) answers on 8080; TorchServe on the pod's loopback
    assert props["inference_address"] == "http://127.0.0.1:8085" and props["metrics_address"] == "http://0.0.0.0:8082"
    assert props["management_address"] == "http://127.0.0.1:8081"
    assert props["metrics_mode"] == "prometheus" and props["enable_envvars_config"] == "true"
    assert props["disable_token_authorization"] == "false"
    snapshot = json.loads(props["model_snapshot"])
    assert snapshot["models"]["sentiment-gradients"]["1.0"]["marName"] == "sentiment-gradients.mar"
    assert snapshot["models"]["sentiment-gradients"]["1.0"]["batchSize"] == 1  # deploy/gradients.yaml's
    missing = subprocess.run(
        [str(ROOT / "bin/kserve-layout"), str(tmp_path / "t"), "no-such-model"], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no-such-model" in missing.stderr


# --- v1 --------------------------------------------------------------------------------------------


def test_v1_predict_answers_each_instance_in_order_through_the_sdk(v1):
    texts = ["The cat sat.", "A dog ran across the long road.", "Hi"]
    out = run(
        sdk("v1").infer(
            v1.url, {"instances": [{"text": t} for t in texts]}, model_name="tiny-attention", headers=v1.auth()
        )
    )
    predictions = out["predictions"]
    assert len(predictions) == 3
    for text, answer in zip(texts, predictions):
        surfaces = [t["surface"] for t in answer["tokens"] if not t["special"]]
        assert "".join(surfaces).replace(" ", "").lower() == text.replace(" ", "").lower()
        n = len(answer["tokens"])
        assert answer["attention"]["shape"][-2:] == [n, n]


def test_v1_a_bare_string_instance_is_a_text(v1):
    status, out = v1.curl("v1/models/tiny-attention:predict", {"instances": ["The cat sat."]})
    assert status == 200 and out["predictions"][0]["tokens"][1]["surface"] == "The"


def test_v1_bad_instances_get_their_own_error_and_the_others_are_answered(v1):
    status, out = v1.curl(
        "v1/models/tiny-attention:predict",
        {"instances": [{"text": "The cat sat."}, {"text": "x", "top_k": -1}, {"txt": "typo"}, {"text": "Fine too."}]},
    )
    assert status == 200
    first, bad_top_k, typo, last = out["predictions"]
    assert "attention" in first and "attention" in last
    assert bad_top_k["error"]["field"] == "top_k" and bad_top_k["error"]["code"] == 400
    assert typo["error"]["field"] == "txt" and "did you mean 'text'" in typo["error"]["message"]


def test_v1_all_instances_bad_is_a_4xx_and_the_sdk_raises_with_the_message(v1):
    import httpx

    status, out = v1.curl("v1/models/tiny-attention:predict", {"instances": [{"text": "x", "layers": [99]}]})
    assert status == 400 and out["predictions"][0]["error"]["field"] == "layers"
    with pytest.raises(httpx.HTTPStatusError, match="instances: must be a non-empty list"):
        run(sdk("v1").infer(v1.url, {"instances": []}, model_name="tiny-attention", headers=v1.auth()))


@pytest.mark.parametrize(
    "body, field",
    [
        (b"not json", "body"),
        (b'{"inputs": []}', "instances"),
        (b'{"instances": {"text": "x"}}', "instances"),
        (b'{"instances": [' + b",".join([b'"x"'] * 65) + b"]}", "instances"),
    ],
)  # over MAX_INSTANCES
def test_v1_a_bad_body_is_a_400_naming_the_field(v1, body, field):
    r = v1.post("v1/models/tiny-attention:predict", body)
    assert r.status == 400 and r.json()["field"] == field and r.json()["error"].startswith(field)


def test_token_authorization_is_on_in_the_layout(v1):
    request = urllib.request.Request(
        f"{v1.url}/v1/models/tiny-attention:predict",
        method="POST",
        data=b'{"instances": ["x"]}',
        headers={"Content-Type": "application/json"},
    )
    r = ts._send(request, 60)
    assert r.status in (400, 401) and "Token Authorization failed" in r.body.decode()


def test_v1_explain_answers_the_gradients_summary_of_each_instance(v1):
    body = {
        "instances": [
            {"text": REVIEW, "n_steps": 16},
            {"text": "A dull, lifeless film.", "n_steps": 16},
            {"text": REVIEW, "baseline": "ones"},
        ]
    }
    out = run(sdk("v1").explain(v1.url, "sentiment-gradients", body, headers=v1.auth()))
    good, bad_film, wrong = out["explanations"]
    assert good["prediction"]["label"] == "positive" and bad_film["prediction"]["label"] == "negative"
    for answer in (good, bad_film):
        assert len(answer["attributions"]["raw"]) == len(answer["tokens"]) and answer["n_steps"] == 16
    assert wrong["error"]["field"] == "baseline"


def test_v1_predict_of_gradients_refuses_binary_formats_naming_format(v1):
    status, out = v1.curl(
        "v1/models/tiny-gradients:predict",
        {"instances": [{"text": "fine", "n_steps": 4, "format": "npz"}, {"text": "fine", "n_steps": 4}]},
    )
    assert status == 200
    assert out["predictions"][0]["error"]["field"] == "format" and "n_steps" in out["predictions"][1]


def test_v1_requests_batched_by_torchserve_are_each_answered(v1):
    """The tiny archives batch up to 4 requests (1 s delay): the stock envelopes would read only
    the first; every request must get its own instances' answers."""
    bodies = [{"instances": [{"text": "word " * (i + 1), "n_steps": 4}] * (1 + i % 2)} for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda b: v1.curl("v1/models/tiny-gradients:explain", b), bodies))
    assert re.search(r"batch of [234] request\(s\) \(KServe v1\)", (v1.workdir / "logs/model_log.log").read_text())
    for i, (status, out) in enumerate(answers):
        assert status == 200 and len(out["explanations"]) == 1 + i % 2
        for answer in out["explanations"]:
            assert len(answer["tokens"]) == i + 3  # [CLS] + i+1 words + [SEP]


# --- v2 --------------------------------------------------------------------------------------------


def v2_request(model: str, request: dict):
    from kserve import InferInput, InferRequest

    return InferRequest(
        model_name=model,
        request_id="req-1",
        infer_inputs=[InferInput("request", [1], "BYTES", data=[json.dumps(request)])],
    )


def test_v2_attention_is_a_typed_tensor_read_back_with_numpy(v2, tiny_model_dir):
    from exformer import explain_attention, load_model

    response = run(
        sdk("v2").infer(
            v2.url,
            v2_request("tiny-attention", {"text": "The cat sat on the mat."}),
            model_name="tiny-attention",
            headers=v2.auth(),
        )
    )
    outputs = {o.name: o for o in response.outputs}
    assert response.id == "req-1"
    attention = outputs["attention"]
    assert attention.datatype == "FP32"
    values = attention.as_numpy()
    local = explain_attention(load_model(tiny_model_dir("bert")), "The cat sat on the mat.")
    assert values.dtype == np.float32 and values.shape == local.attention.shape
    np.testing.assert_allclose(values, local.attention, rtol=1e-5, atol=1e-7)  # threads differ: ~1 ulp
    tokens = json.loads(outputs["tokens"].as_numpy()[0])
    assert len(tokens) == values.shape[-1] and outputs["n_tokens_input"].as_numpy().tolist() == [len(tokens)]
    assert outputs["truncated"].datatype == "BOOL"


def test_v2_float16_encoding_answers_an_fp16_tensor(v2):
    request = {"text": "The cat sat.", "layers": [1], "heads": [0, 1], "encoding": "float16-base64"}
    response = run(
        sdk("v2").infer(v2.url, v2_request("tiny-attention", request), model_name="tiny-attention", headers=v2.auth())
    )
    outputs = {o.name: o for o in response.outputs}
    values = outputs["attention"].as_numpy()
    assert outputs["attention"].datatype == "FP16" and values.dtype == np.float16
    assert values.shape[:2] == (1, 2) and outputs["attention.heads"].as_numpy().tolist() == [0, 1]
    np.testing.assert_allclose(values.astype(np.float32).sum(-1), 1, atol=5e-3)  # rows of attention sum to 1


def test_v2_sparse_rows_and_rollout_are_typed_tensors(v2, tiny_model_dir):
    from exformer import explain_attention, load_model

    request = {"text": "The cat sat on the mat.", "heads": "mean", "top_k_per_row": 3, "rollout": True}
    response = run(
        sdk("v2").infer(v2.url, v2_request("tiny-attention", request), model_name="tiny-attention", headers=v2.auth())
    )
    outputs = {o.name: o.as_numpy() for o in response.outputs}
    local = explain_attention(load_model(tiny_model_dir("bert")), request)
    for block in ("attention", "rollout"):
        sent = local[block]
        assert outputs[f"{block}.columns"].dtype == np.int64
        np.testing.assert_array_equal(outputs[f"{block}.columns"], np.asarray(sent["columns"]["data"]))
        np.testing.assert_allclose(outputs[f"{block}.values"], np.asarray(sent["values"]["data"]), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(outputs[f"{block}.kept"] + outputs[f"{block}.rest"], 1, atol=1e-5)  # rows' mass


def test_v2_named_inputs_with_curl_explain_a_real_review(v2):
    status, out = v2.curl(
        "v2/models/sentiment-gradients/infer",
        {
            "id": "r-7",
            "inputs": [
                {"name": "text", "shape": [1], "datatype": "BYTES", "data": [REVIEW]},
                {"name": "n_steps", "shape": [1], "datatype": "INT64", "data": [16]},
                {"name": "baseline", "shape": [1], "datatype": "BYTES", "data": ["pad"]},
            ],
        },
    )
    assert status == 200 and out["id"] == "r-7" and out["model_name"] == "sentiment-gradients"
    outputs = {o["name"]: o for o in out["outputs"]}
    tokens = json.loads(outputs["tokens"]["data"][0])
    assert outputs["attributions.raw"]["shape"] == [len(tokens)]
    assert json.loads(outputs["prediction"]["data"][0])["label"] == "positive"
    assert outputs["n_steps"] == {"name": "n_steps", "datatype": "INT64", "shape": [1], "data": [16]}
    assert outputs["step_sizes"]["shape"] == [16]


@pytest.mark.parametrize(
    "inputs, field",
    [
        (
            [{"name": "request", "shape": [2], "datatype": "BYTES", "data": ['{"text": "a"}', '{"text": "b"}']}],
            "inputs[0].data",
        ),
        ([{"name": "request", "shape": [1], "datatype": "INT64", "data": [1]}], "inputs[0].datatype"),
        ([{"name": "request", "shape": [1], "datatype": "BYTES", "data": ['{"text": "a", "top_k": 0}']}], "top_k"),
        (
            [
                {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]},
                {"name": "topk", "shape": [1], "datatype": "INT64", "data": [3]},
            ],
            "topk",
        ),
        ([], "inputs"),
    ],
)
def test_v2_a_bad_request_is_a_400_naming_the_field(v2, inputs, field):
    status, out = v2.curl("v2/models/tiny-attention/infer", {"inputs": inputs})
    assert status == 400 and out["field"] == field and out["error"].startswith(field)


def test_v2_the_sdk_raises_with_our_message(v2):
    import httpx

    with pytest.raises(httpx.HTTPStatusError, match="layers: "):
        run(
            sdk("v2").infer(
                v2.url,
                v2_request("tiny-attention", {"text": "a", "layers": [42]}),
                model_name="tiny-attention",
                headers=v2.auth(),
            )
        )


# --- the manifests ---------------------------------------------------------------------------------


def _model_class(name: str):
    import kserve
    import kubernetes.client

    return getattr(kserve, name, None) or getattr(kserve.models, name, None) or getattr(kubernetes.client, name)


def build(value, type_name: str, errors: list, path: str = ""):
    """`value` (a manifest's mapping) as the SDK's model `type_name`, field by field; every key
    must be a field the model knows (the SDK's own deserializer drops unknown keys, so a typo
    would pass), each problem appended to `errors`."""
    match = re.fullmatch(r"(?:list|List)\[(.+)\]", type_name)
    if match:
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list")
            return None
        return [build(item, match.group(1), errors, f"{path}[{i}]") for i, item in enumerate(value)]
    match = re.fullmatch(r"(?:dict\(str, (.+)\)|Dict\[str, (.+)\])", type_name)
    if match:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a mapping")
            return None
        return {k: build(v, match.group(1) or match.group(2), errors, f"{path}.{k}") for k, v in value.items()}
    if type_name in ("str", "int", "bool", "float", "object", "datetime", "date"):
        if isinstance(value, (dict, list)) and type_name != "object":
            errors.append(f"{path}: expected {type_name}")
        return value
    cls = _model_class(type_name)
    if not isinstance(value, dict):
        errors.append(f"{path}: expected a {type_name} mapping")
        return None
    by_json = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    errors.extend(f"{path}.{key}: not a field of {type_name}" for key in value if key not in by_json)
    fields = {
        by_json[k]: build(v, cls.openapi_types[by_json[k]], errors, f"{path}.{k}")
        for k, v in value.items()
        if k in by_json
    }
    try:
        return cls(**fields)
    except (TypeError, ValueError) as error:  # the model's own checks (required fields, enums)
        errors.append(f"{path}: {error}")
        return None


MANIFESTS = sorted((ROOT / "deploy/kserve").glob("inferenceservice-*.yaml"))


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_manifest_builds_as_an_sdk_inferenceservice(manifest):
    import kserve

    errors = []
    isvc = build(yaml.safe_load(manifest.read_text()), "V1beta1InferenceService", errors)
    assert errors == [] and isinstance(isvc, kserve.V1beta1InferenceService)
    assert isvc.api_version == "serving.kserve.io/v1beta1" and isvc.kind == "InferenceService"
    model = isvc.spec.predictor.model
    assert model.model_format.name == "exformer" and model.protocol_version in ("v1", "v2")
    assert model.runtime == RUNTIME["metadata"]["name"]  # ours, never KServe's stock TorchServe runtime
    envelope = {e.name: e.value for e in model.env}["TS_SERVICE_ENVELOPE"]
    assert envelope == {"v1": "kserve", "v2": "kservev2"}[model.protocol_version]
    assert model.storage_uri.startswith("gs://")
    if "gpu" in manifest.name:
        assert model.resources.limits["nvidia.com/gpu"] == "2"
        gpu_config = yaml.safe_load((ROOT / "deploy/kserve/gpu-model-config.yaml").read_text())
        assert gpu_config["handler"]["devices_per_worker"] == 2


RUNTIME = yaml.safe_load((ROOT / "deploy/kserve/runtime.yaml").read_text())


def test_the_runtime_builds_as_an_sdk_cluster_serving_runtime_serving_our_format_and_both_protocols():
    import kserve

    errors = []
    runtime = build(RUNTIME, "V1alpha1ClusterServingRuntime", errors)
    assert errors == [] and isinstance(runtime, kserve.V1alpha1ClusterServingRuntime)
    assert runtime.api_version == "serving.kserve.io/v1alpha1" and runtime.kind == "ClusterServingRuntime"
    spec = runtime.spec
    assert [(f.name, f.auto_select) for f in spec.supported_model_formats] == [("exformer", True)]
    assert spec.protocol_versions == ["v1", "v2"]
    (container,) = spec.containers
    assert container.name == "kserve-container" and "exformer-torchserve" in container.image
    assert container.command[-1] == "exformer.serving.kserve_front"
    assert [p.container_port for p in container.ports] == [8080]
    assert container.readiness_probe.http_get.path == "/v2/health/ready"
    assert container.liveness_probe.http_get.path == "/v2/health/live"
    assert container.security_context.run_as_non_root and container.security_context.run_as_user == 1000


def test_a_typo_in_a_manifest_fails_the_check():
    doc = yaml.safe_load(MANIFESTS[0].read_text())
    doc["spec"]["predictor"]["model"]["protocolVerison"] = doc["spec"]["predictor"]["model"].pop("protocolVersion")
    doc["spec"]["predictor"]["model"]["resources"]["limit"] = {"cpu": "1"}
    errors = []
    build(doc, "V1beta1InferenceService", errors)
    assert any("protocolVerison" in e for e in errors) and any(".resources.limit:" in e for e in errors)
