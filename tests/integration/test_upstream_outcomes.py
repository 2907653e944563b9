"""Every upstream outcome against one rule: a 4xx from Mistral is relayed as Mistral's own error; any other status,
or a 2xx the gateway cannot read, is a 502. None of them is cached."""

from __future__ import annotations

import pytest

from gateway_dev.emulator.server import Fault

REFUSAL = {"object": "error", "message": "no", "type": "invalid_request_error", "param": None, "code": None}
OUTCOMES = {
    "400": (Fault(status=400, body=REFUSAL), 400),
    "404": (Fault(status=404, body=REFUSAL), 404),
    "422": (Fault(status=422), 422),
    "429 after retries": (Fault(status=429), 429),
    "500": (Fault(status=500), 502),
    "501": (Fault(status=501), 502),
    "302": (Fault(status=302), 502),
    "200 html page": (Fault(garbage=True, content_type="text/html"), 502),
    "200 json type, html body": (Fault(garbage=True), 502),
}


@pytest.fixture(autouse=True)
def one_attempt(monkeypatch: pytest.MonkeyPatch, reconfigure) -> None:
    monkeypatch.setenv("UPSTREAM_MAX_ATTEMPTS", "1")
    reconfigure()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/moderations"])
@pytest.mark.parametrize("outcome", OUTCOMES)
def test_only_a_4xx_is_relayed_and_nothing_failed_is_cached(gateway, emulator, chat_body, path, outcome) -> None:
    fault, status = OUTCOMES[outcome]
    body = chat_body(f"outcome {outcome}") if "chat" in path else {"model": "m", "input": f"outcome {outcome}"}
    emulator.script(fault)
    answer = gateway.request("POST", path, body)
    assert answer.status == status and answer.json["object"] == "error"
    if status == 400:
        assert answer.json == REFUSAL  # Mistral's body, as Mistral sent it
    again = gateway.request("POST", path, body)
    assert again.status == 200 and again.header("X-Cache") == "MISS"
