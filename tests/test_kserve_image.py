"""Our KServe runtime run as a cluster would run it, without the cluster: the image `bin/image`
builds, started with the command, args and env of deploy/kserve/runtime.yaml merged with an
InferenceService's env, the storage `bin/kserve-layout` lays out mounted at /mnt/models, as the
image's non-root user, on the host's network (127.0.0.1). Then every KServe endpoint through it:
the kserve SDK's REST client, curl, the runtime's probes as written, exformer.Client and
`exformer explain`.

The ports move by environment variables (EXFORMER_FRONT_ADDRESS, TS_*_ADDRESS; the file and the
command stay as written), as two pods and other test servers share this machine's network."""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = yaml.safe_load((ROOT / "deploy/kserve/runtime.yaml").read_text())
(CONTAINER,) = RUNTIME["spec"]["containers"]
IMAGE = CONTAINER["image"]
OFFSET = int(os.environ.get("EXFORMER_TEST_PORT_OFFSET", "0"))
REVIEW = "A warm, funny and quietly moving film."
TEXT = "The cat sat on the mat."
sys.path.insert(0, str(ROOT / "scripts"))
import kserve_layout  # noqa: E402


def _buildah() -> str:
    """buildah, where it can build and run here; else the test module is skipped, saying why."""
    tool = shutil.which("buildah")
    if tool is None:
        pytest.skip(
            "buildah is not installed, so the image cannot be built and run here: bin/test installs "
            "it (apt-get install buildah debootstrap)",
            allow_module_level=True,
        )
    probe = subprocess.run([tool, "from", "scratch"], capture_output=True, text=True)  # what bin/image needs:
    container = probe.stdout.strip()  # a container, mounted
    if probe.returncode == 0:
        probe = subprocess.run([tool, "mount", container], capture_output=True, text=True)
        subprocess.run([tool, "rm", container], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"buildah cannot build and run images here ({probe.stderr.strip()[:300]})", allow_module_level=True)
    return tool


BUILDAH = _buildah()


@pytest.fixture(scope="module")
def image():
    """The image, built by the project's own command (its time is printed)."""
    started = time.time()
    out = subprocess.run([str(ROOT / "bin/image"), IMAGE], capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    print(f"\nbin/image {IMAGE}: {time.time() - started:.0f} s; {out.stdout.strip().splitlines()[-1]}")
    return IMAGE


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    out = tmp_path_factory.mktemp("kserve-storage")
    kserve_layout.main([str(out), "minilm-attention", "sentiment-gradients"])
    for path in [out, *out.rglob("*")]:  # readable by the image's user, as a storage initializer leaves it
        path.chmod(0o755 if path.is_dir() else 0o644)
    return out


class Pod:
    """One kserve-container: `buildah run` of the runtime's command in a container of the image."""

    def __init__(self, image: str, storage: Path, isvc: str, port: int, log: Path):
        manifest = yaml.safe_load((ROOT / "deploy/kserve" / isvc).read_text())
        model = manifest["spec"]["predictor"]["model"]
        env = {e["name"]: e["value"] for e in CONTAINER.get("env", [])}
        env.update({e["name"]: e["value"] for e in model.get("env", [])})  # the InferenceService's win
        self.protocol = model["protocolVersion"]
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        env.update(
            {
                "EXFORMER_FRONT_ADDRESS": self.url,
                "TS_INFERENCE_ADDRESS": f"http://127.0.0.1:{port + 5}",
                "TS_MANAGEMENT_ADDRESS": f"http://127.0.0.1:{port + 1}",
                "TS_METRICS_ADDRESS": f"http://127.0.0.1:{port + 2}",
                "TS_GRPC_INFERENCE_PORT": str(port + 3),
                "TS_GRPC_MANAGEMENT_PORT": str(port + 4),
            }
        )
        self.container = subprocess.run(
            [BUILDAH, "from", "-q", image], capture_output=True, text=True, check=True
        ).stdout.strip()
        self.root = Path(
            subprocess.run(
                [BUILDAH, "mount", self.container], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
        command = [*CONTAINER["command"], *CONTAINER["args"]]
        self.process = subprocess.Popen(
            [
                BUILDAH,
                "run",
                "--isolation",
                "chroot",
                "--user",
                str(CONTAINER["securityContext"]["runAsUser"]),
                "--volume",
                f"{storage}:/mnt/models:ro",
                *[a for k, v in env.items() for a in ("--env", f"{k}={v}")],
                self.container,
                "--",
                *command,
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.log = log

    def key(self) -> str:
        """The inference key TorchServe wrote in the image user's home (its working directory)."""
        return json.loads((self.root / "home/model-server/key_file.json").read_text())["inference"]["key"]

    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.key()}"}

    def probe(self, name: str) -> int:
        """The runtime's probe as written (its path), at this pod's port; the HTTP status."""
        path = CONTAINER[name]["httpGet"]["path"]
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as error:
            return error.code

    def wait_ready(self, timeout: float = 300) -> float:
        started = time.time()
        while time.time() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the pod exited: {self.log.read_text()[-3000:]}")
            try:
                if self.probe("readinessProbe") == 200:
                    return time.time() - started
            except OSError:
                pass
            time.sleep(1)
        raise TimeoutError(f"not ready in {timeout} s: {self.log.read_text()[-3000:]}")

    def curl(self, method: str, path: str, body=None, token: bool = True) -> tuple[int, dict]:
        command = ["curl", "-sS", "-X", method, "-w", "\n%{http_code}", f"{self.url}{path}"]
        if token:
            command += ["-H", f"Authorization: Bearer {self.key()}"]
        if body is not None:
            command += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
        text, status = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True).stdout.rsplit(
            "\n", 1
        )
        return int(status), json.loads(text)

    def stop(self) -> None:
        """As the kubelet stops a pod: SIGTERM, then what is left is killed."""
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        subprocess.run([BUILDAH, "rm", self.container], capture_output=True)


@pytest.fixture(scope="module")
def pods(image, storage, tmp_path_factory):
    """A v1 and a v2 pod, started together."""
    logs = tmp_path_factory.mktemp("pods")
    started = time.time()
    running = {
        "v1": Pod(image, storage, "inferenceservice-v1.yaml", 19300 + OFFSET, logs / "v1.log"),
        "v2": Pod(image, storage, "inferenceservice-v2.yaml", 19320 + OFFSET, logs / "v2.log"),
    }
    try:
        for pod in running.values():
            pod.wait_ready()
        print(f"\nboth pods ready {time.time() - started:.0f} s after start")
        yield running
    finally:
        for pod in running.values():
            pod.stop()


@pytest.fixture(scope="module")
def v1(pods):
    return pods["v1"]


@pytest.fixture(scope="module")
def v2(pods):
    return pods["v2"]


def sdk(protocol: str):
    from kserve import InferenceRESTClient, RESTConfig

    return InferenceRESTClient(RESTConfig(protocol=protocol, timeout=300, retries=0))


def run(coroutine):
    return asyncio.run(coroutine)


# --- the image ----------------------------------------------------------------------------------


def test_the_image_runs_as_a_non_root_user_with_our_pinned_stack(image):
    out = subprocess.run(
        [
            BUILDAH,
            "run",
            "--isolation",
            "chroot",
            "--user",
            "1000",
            container := subprocess.run(
                [BUILDAH, "from", "-q", image], capture_output=True, text=True, check=True
            ).stdout.strip(),
            "--",
            "python",
            "-c",
            "import os, torch, transformers, ts, exformer; from importlib.metadata import version; "
            "print(os.getuid(), torch.__version__, transformers.__version__, version('torchserve'), "
            "exformer.__version__)",
        ],
        capture_output=True,
        text=True,
    )
    subprocess.run([BUILDAH, "rm", container], capture_output=True)
    pins = dict(
        line.split("==")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    uid, torch_version, transformers_version, torchserve_version, exformer_version = out.stdout.split()
    assert uid == "1000"
    assert torch_version.split("+")[0] == pins["torch"] and torch_version.endswith("+cpu")
    assert transformers_version == pins["transformers"].split()[0]
    assert torchserve_version == "0.12.0"


# --- probes, health and metadata -------------------------------------------------------------------


def test_the_runtimes_probes_as_written_succeed(pods):
    for pod in pods.values():
        assert pod.probe("readinessProbe") == 200 and pod.probe("livenessProbe") == 200


def test_v2_health_and_model_readiness_through_the_sdk(v2):
    assert run(sdk("v2").is_server_live(v2.url)) is True
    assert run(sdk("v2").is_server_ready(v2.url)) is True
    assert run(sdk("v2").is_model_ready(v2.url, "minilm-attention")) is True
    assert v2.curl("GET", "/v2/models/nothing/ready", token=False)[0] == 404


def test_v2_server_and_model_metadata(v2):
    status, server = v2.curl("GET", "/v2", token=False)
    assert status == 200 and server["name"] == "exformer-torchserve"
    status, metadata = v2.curl("GET", "/v2/models/minilm-attention")
    assert status == 200 and metadata["name"] == "minilm-attention" and metadata["versions"] == ["1.0"]
    assert metadata["inputs"] == [{"name": "request", "datatype": "BYTES", "shape": [1]}]


def test_v1_liveness_model_readiness_and_listing(v1):
    assert run(sdk("v1").is_server_live(v1.url)) is True
    assert run(sdk("v1").is_model_ready(v1.url, "sentiment-gradients")) is True
    assert v1.curl("GET", "/v1/models/sentiment-gradients", token=False) == (
        200,
        {"name": "sentiment-gradients", "ready": True},
    )
    assert v1.curl("GET", "/v1/models") == (200, {"models": ["minilm-attention", "sentiment-gradients"]})


def test_a_token_is_required_where_token_authorization_is_on(pods):
    v1, v2 = pods["v1"], pods["v2"]
    status, body = v1.curl("POST", "/v1/models/minilm-attention:predict", {"instances": [TEXT]}, token=False)
    assert status in (400, 401) and "Token" in body["message"]
    assert v2.curl("GET", "/v2/models/minilm-attention", token=False)[0] == 401
    assert v1.curl("GET", "/v1/models", token=False)[0] == 401


# --- v1 --------------------------------------------------------------------------------------------


def test_v1_several_instances_with_a_bad_one_between_them(v1):
    body = {"instances": [{"text": TEXT, "layers": [0]}, {"text": TEXT, "layers": [9]}, "A second sentence."]}
    out = run(sdk("v1").infer(v1.url, body, model_name="minilm-attention", headers=v1.auth()))
    first, bad, third = out["predictions"]
    assert first["attention"]["shape"] == [1, 12, 9, 9]
    assert bad["error"]["field"] == "layers" and bad["error"]["code"] == 400
    assert third["tokens"][1]["text"] == "a"
    status, answer = v1.curl("POST", "/v1/models/minilm-attention:predict", body)
    assert status == 200 and [set(a) == {"error"} for a in answer["predictions"]] == [False, True, False]


def test_v1_explain_answers_the_gradients_summary(v1):
    body = {"instances": [{"text": REVIEW, "n_steps": 8}, {"text": "A dull, lifeless film.", "n_steps": 8}]}
    out = run(sdk("v1").explain(v1.url, "sentiment-gradients", body, headers=v1.auth()))
    labels = [e["target"]["label"] for e in out["explanations"]]
    assert labels == ["positive", "negative"]
    for answer in out["explanations"]:
        assert len(answer["attributions"]["raw"]) == len(answer["tokens"])


def test_v1_every_instance_bad_is_the_errors_status(v1):
    status, answer = v1.curl("POST", "/v1/models/sentiment-gradients:predict", {"instances": [{"text": ""}]})
    assert status == 400 and answer["predictions"][0]["error"]["field"] == "text"


# --- v2 --------------------------------------------------------------------------------------------


def v2_request(request: dict):
    from kserve import InferInput, InferRequest

    return InferRequest(
        model_name="minilm-attention",
        request_id="req-1",
        infer_inputs=[InferInput("request", [1], "BYTES", data=[json.dumps(request)])],
    )


def test_v2_attention_fp32_and_fp16_equal_the_in_process_values(v2):
    from exformer import explain_attention, load_model

    expected = explain_attention(load_model(ROOT / "build/models/minilm", "minilm-attention"), TEXT).attention
    response = run(
        sdk("v2").infer(v2.url, v2_request({"text": TEXT}), model_name="minilm-attention", headers=v2.auth())
    )
    fp32 = {o.name: o for o in response.outputs}["attention"]
    assert fp32.datatype == "FP32" and fp32.shape == list(expected.shape)
    # float32 as computed in process, to its rounding: the worker's thread count sums in another order
    np.testing.assert_allclose(fp32.as_numpy(), expected, rtol=1e-5, atol=1e-6)
    response = run(
        sdk("v2").infer(
            v2.url,
            v2_request({"text": TEXT, "encoding": "float16-base64"}),
            model_name="minilm-attention",
            headers=v2.auth(),
        )
    )
    fp16 = {o.name: o for o in response.outputs}["attention"]
    assert fp16.datatype == "FP16"
    np.testing.assert_allclose(fp16.as_numpy().astype(np.float32), expected, atol=1e-3, rtol=1e-3)


def test_v2_named_inputs_with_curl(v2):
    body = {
        "id": "r1",
        "inputs": [
            {"name": "text", "shape": [1], "datatype": "BYTES", "data": [TEXT]},
            {"name": "layers", "shape": [1], "datatype": "INT64", "data": [5]},
        ],
    }
    status, answer = v2.curl("POST", "/v2/models/minilm-attention/infer", body)
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert status == 200 and answer["id"] == "r1" and outputs["attention"]["shape"] == [1, 12, 9, 9]
    status, error = v2.curl(
        "POST",
        "/v2/models/minilm-attention/infer",
        {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [""]}]},
    )
    assert status == 400 and error["field"] == "text"


# --- our client and the dataset command against the InferenceService's URL -----------------------


def test_the_client_speaks_kserve_v1_to_the_pod(v1):
    from exformer import Client, RequestError

    client = Client(v1.url, token=v1.key(), protocol="kserve-v1")
    a = client.attention("minilm-attention", TEXT, layers=[5])
    assert a.attention.shape == (1, 12, 9, 9)
    g = client.gradients("sentiment-gradients", "A dull, lifeless film.", n_steps=8)
    assert g.target["label"] == "negative" and g.attributions.shape == (len(g.tokens),)
    with pytest.raises(RequestError) as refused:
        client.attention("minilm-attention", TEXT, layers=[9])
    assert refused.value.field == "layers" and refused.value.code == 400
    with pytest.raises(ValueError, match="JSON"):
        client.gradients("sentiment-gradients", REVIEW, tensors=True)


def test_exformer_explain_runs_against_the_pod_without_a_management_api(v1, tmp_path):
    rows = tmp_path / "reviews.jsonl"
    rows.write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate([REVIEW, "A dull film.", ""]))
    )
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("exformer")),
            "explain",
            "sentiment-gradients",
            str(rows),
            "--out",
            str(tmp_path / "out"),
            "--id-column",
            "id",
            "--n-steps",
            "8",
            "--url",
            v1.url,
            "--token",
            v1.key(),
            "--protocol",
            "kserve-v1",
            "--no-progress",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "concurrency 2" in out.stderr  # no management API there: the documented default
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "out").sort_by("row").to_pylist()
    assert [(r["id"], r["prediction"], r["error_field"]) for r in table] == [
        ("0", "positive", None),
        ("1", "negative", None),
        ("2", None, "text"),
    ]
