"""`make serve` runs the two functions as the cloud does: each with its own container's state, behind the
cloud's payload limits (API Gateway's 10 MB, Lambda's 6 MB), and quiet when a caller hangs up."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from gateway_dev.emulator.server import Fault

KEY = "serve-like-the-cloud-key"
CALLER = "key-id-cloudlike"
CHAT = "/v1/chat/completions"


@pytest.fixture
def serve(gateway: Any, template: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The local server as `make serve` builds it (own containers), one attempt per call, a circuit that
    opens after 2 failures."""
    from gateway_dev.runner.asgi import BackgroundServer, LocalGateway
    from gateway_dev.runner.bridge import ApiBridge

    monkeypatch.setenv("UPSTREAM_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("CIRCUIT_FAILURE_THRESHOLD", "2")
    server = BackgroundServer(LocalGateway(ApiBridge(template, api_keys={KEY: CALLER}, own_containers=True)))
    with httpx2.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as client:
        yield client
    server.stop()


def chat(text: str) -> dict[str, Any]:
    return {"model": "mistral-small-latest", "messages": [{"role": "user", "content": text}]}


def test_a_buffered_request_does_not_reset_the_streaming_functions_circuit(serve, emulator) -> None:
    # Given Mistral failing the streaming function's chat twice: that function's circuit opens
    emulator.script(Fault(status=503), Fault(status=503))
    assert [serve.post(CHAT, json=chat(f"down {n}")).status_code for n in range(2)] == [502, 502]
    # When the buffered function gets an answer from Mistral (its own container, its own circuit)
    assert serve.get("/v1/models", headers={"Cache-Control": "no-cache"}).status_code == 200
    # Then the streaming function's circuit is still open: it fails fast without calling Mistral
    fast = serve.post(CHAT, json=chat("still down?"))
    assert fast.status_code == 503 and fast.json()["code"] == "circuit_open"
    assert emulator.calls(CHAT) == 2


def test_the_buffered_functions_circuit_is_its_own_too(serve, emulator) -> None:
    # Given the buffered function's circuit opened by two failures
    emulator.script(Fault(status=503), Fault(status=503))
    assert [
        serve.post("/v1/embeddings", json={"model": "mistral-embed", "input": [f"x{n}"]}).status_code for n in range(2)
    ] == [502, 502]
    # Then the streaming function still reaches Mistral
    assert serve.post(CHAT, json=chat("the other function")).status_code == 200


def assert_cloud_refusal(response: httpx2.Response, status: int = 413) -> None:
    assert response.status_code == status, response.text[:300]
    error = response.json()
    assert (
        error["object"] == "error" and error["code"] == "REQUEST_TOO_LARGE" and "Request Too Long" in error["message"]
    )
    assert response.headers.get("access-control-allow-origin")  # API Gateway's gateway responses carry CORS


def upload(client: httpx2.Client, size: int) -> httpx2.Response:
    audio = {"file": ("speech.mp3", b"\x01\xff" * (size // 2), "audio/mpeg")}
    return client.post("/v1/audio/transcriptions", files=audio, data={"model": "voxtral-mini-latest"})


def test_a_12_mb_upload_is_refused_by_api_gateway_before_any_work(serve, emulator) -> None:
    assert_cloud_refusal(upload(serve, 12 * 1024 * 1024))
    assert emulator.calls() == 0


def test_a_5_mb_upload_is_refused_as_lambda_refuses_its_6_mb_event(serve, emulator) -> None:
    # Binary media go base64-encoded in the event: 5 MB is ~6.7 MB there, over Lambda's 6 MB
    assert_cloud_refusal(upload(serve, 5 * 1024 * 1024))
    assert emulator.calls() == 0


def test_an_upload_within_the_limits_is_relayed(serve, emulator) -> None:
    answer = upload(serve, 1024 * 1024)
    assert answer.status_code == 200, answer.text[:300]
    assert emulator.calls("/v1/audio/transcriptions") == 1


def test_a_streamed_route_is_held_to_lambdas_6_mb_too(serve, emulator) -> None:
    body = json.dumps(chat("x" * (7 * 1024 * 1024)))
    assert_cloud_refusal(serve.post(CHAT, content=body, headers={"Content-Type": "application/json"}))
    assert emulator.calls() == 0


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("path", [CHAT, "/v1/embeddings", "/v1/ocr"])
def test_a_caller_hanging_up_mid_upload_leaves_no_traceback(serve, emulator, path: str) -> None:
    captured = Captured()
    uvicorn_errors = logging.getLogger("uvicorn.error")
    uvicorn_errors.addHandler(captured)
    try:
        # Given a caller that announces a body and hangs up halfway through sending it
        host, port = str(serve.base_url).removeprefix("http://").rstrip("/").split(":")
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
        )
        with socket.create_connection((host, int(port))) as connection:
            connection.sendall(head.encode() + b'{"model": "mistral')
        time.sleep(0.5)
        # Then the server is still fine, and wrote no traceback about it
        assert serve.post(CHAT, json=chat("still serving")).status_code == 200
    finally:
        uvicorn_errors.removeHandler(captured)
    assert not [record for record in captured.records if record.levelno >= logging.ERROR], [
        record.getMessage() for record in captured.records
    ]
    assert emulator.calls(path) == (1 if path == CHAT else 0)
