"""The KServe pod's front (exformer.serving.kserve_front) in-process, TorchServe behind it
replaced by a recorder: what the front answers itself, and what it never forwards."""

import asyncio
import json

import httpx
import pytest

from exformer.serving import kserve_front

LIMIT = 2097152  # config.properties' and deploy/kserve/config.properties' max_request_size


class Behind(kserve_front.TorchServeBehind):
    """TorchServe's inference API as a recorder: every forwarded call is kept and answered 200."""

    def __init__(self, tmp_path, config=f"max_request_size={LIMIT}\ndisable_token_authorization=true\n"):
        super().__init__(config, tmp_path)
        self.forwarded = []
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self._answer))

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.forwarded.append(request)
        return httpx.Response(200, json={"predictions": []})


def post(behind, path: str, content, headers=None) -> httpx.Response:
    async def send():
        transport = httpx.ASGITransport(app=kserve_front.app(behind))
        async with httpx.AsyncClient(transport=transport, base_url="http://front") as client:
            return await client.post(
                path, content=content, headers={"Content-Type": "application/json", **(headers or {})}
            )

    return asyncio.run(send())


def body_of(size: int) -> bytes:
    prefix = b'{"instances": ["'
    return prefix + b"a" * (size - len(prefix) - 3) + b'"]}'


@pytest.mark.parametrize(
    "path", ["v1/models/tiny-attention:predict", "v2/models/tiny-attention/infer", "predictions/tiny-attention"]
)
def test_a_body_over_max_request_size_is_a_json_413_naming_body_and_the_limit_and_is_not_forwarded(tmp_path, path):
    behind = Behind(tmp_path)
    r = post(behind, f"/{path}", body_of(LIMIT + 1))
    assert r.status_code == 413 and r.headers["content-type"] == "application/json"
    error = r.json()
    assert error["code"] == 413 and error["type"] == "PayloadTooLarge" and error["field"] == "body"
    assert (
        error["message"].startswith(f"body: {LIMIT + 1} bytes")
        and f"max_request_size ({LIMIT} bytes" in error["message"]
    )
    assert error["error"] == error["message"]  # KServe's clients show `error`
    assert behind.forwarded == []


def test_a_streamed_body_without_a_length_is_cut_off_at_the_limit(tmp_path):
    behind = Behind(tmp_path)

    async def chunks():
        for _ in range(3):
            yield b"a" * (LIMIT // 2)

    r = post(behind, "/v1/models/tiny-attention:predict", chunks())
    assert r.status_code == 413 and r.json()["field"] == "body"
    assert r.json()["message"].startswith("body: over this server's max_request_size")
    assert behind.forwarded == []


def test_a_body_at_the_limit_is_forwarded_unchanged(tmp_path):
    behind = Behind(tmp_path)
    body = body_of(LIMIT)
    r = post(behind, "/v1/models/tiny-attention:predict", body, headers={"Authorization": "Bearer k"})
    assert r.status_code == 200
    (call,) = behind.forwarded
    assert call.content == body and call.headers["content-type"] == "application/json"
    assert call.headers["authorization"] == "Bearer k"


def test_the_limit_is_torchserves_setting_or_its_default(tmp_path, monkeypatch):
    assert Behind(tmp_path, "max_request_size=1000\n").max_request_size == 1000
    assert Behind(tmp_path, "").max_request_size == kserve_front.TORCHSERVE_MAX_REQUEST_SIZE
    monkeypatch.setenv("TS_MAX_REQUEST_SIZE", "4096")  # enable_envvars_config, as TorchServe reads it
    behind = Behind(tmp_path, "max_request_size=1000\n")
    assert behind.max_request_size == 4096
    assert post(behind, "/predictions/x", json.dumps({"text": "a" * 5000}).encode()).status_code == 413
