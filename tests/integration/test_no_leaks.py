"""No leaks: the Mistral key, caller keys, Authorization headers and prompts never reach a log line or an
error body, whatever happens (every test that drives the gateway also runs conftest.audit_logs)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import TEST_MISTRAL_KEY, audit_logs

from gateway_dev.emulator.server import Fault

CALLER_KEY = "caller-canary-7f3a9c1e5b"
PROMPT = "canary prompt: my account number is 4242-4242"


def test_nothing_secret_reaches_stdout_stderr_or_error_bodies(gateway: Any, emulator: Any, capfd: Any) -> None:
    # Given requests carrying a caller key and a recognisable prompt, through every kind of outcome
    auth = {"Authorization": f"Bearer {CALLER_KEY}", "x-api-key": CALLER_KEY}
    body = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": PROMPT}]}
    outcomes = [gateway.chat(body, headers=auth), gateway.chat(body, headers=auth)]  # miss, hit
    outcomes.append(gateway.chat({**body, "stream": True}, headers=auth))
    emulator.script(*[Fault(status=503)] * 3)
    outcomes.append(gateway.chat({**body, "temperature": 0.3}, headers=auth))  # upstream failure
    emulator.script(Fault(status=400, body={"object": "error", "message": "bad", "type": "invalid_request_error"}))
    outcomes.append(gateway.chat({**body, "temperature": 0.4}, headers=auth))  # relayed 4xx
    outcomes.append(gateway.chat({**body, "temperature": 9}, headers=auth))  # validation error
    emulator.api_key = "rotated-key-the-secret-lacks"
    outcomes.append(gateway.chat({**body, "temperature": 0.5}, headers=auth))  # rejected key
    outcomes.append(gateway.request("POST", "/v1/embeddings", {"model": "e", "input": [PROMPT]}, headers=auth))
    # Then no output stream, log line or error body carries them
    captured = capfd.readouterr()
    everything = captured.out + captured.err + gateway.logs.getvalue()
    for secret in (CALLER_KEY, PROMPT, TEST_MISTRAL_KEY, "rotated-key-the-secret-lacks", "Emulated answer"):
        assert secret not in everything
    for response in outcomes[3:]:
        assert response.status >= 400
        assert CALLER_KEY not in response.text and TEST_MISTRAL_KEY not in response.text
        assert "Traceback" not in response.text
    assert "request served" in gateway.logs.getvalue()  # the logs were there to be searched


def test_the_audit_catches_a_leak_when_prompts_are_logged_on_purpose(
    gateway: Any, emulator: Any, monkeypatch: pytest.MonkeyPatch, reconfigure
) -> None:

    # Given the documented debug switch on, prompts and answers are logged
    monkeypatch.setenv("LOG_PROMPTS", "true")
    reconfigure()
    gateway.chat({"model": "mistral-small-latest", "messages": [{"role": "user", "content": PROMPT}]})
    assert PROMPT in gateway.logs.getvalue()
    # Then the audit that every test runs would have failed without the switch
    monkeypatch.delenv("LOG_PROMPTS")
    with pytest.raises(AssertionError, match="found in the logs"):
        audit_logs(gateway, emulator)
    gateway.logs.truncate(0)
    gateway.logs.seek(0)


def test_cache_keys_are_hashes(gateway: Any, emulator: Any) -> None:
    import boto3

    gateway.chat({"model": "mistral-small-latest", "messages": [{"role": "user", "content": PROMPT}]})
    items = boto3.client("dynamodb").scan(TableName="mistral-gateway-CacheTable")["Items"]
    assert items and all(PROMPT not in item["pk"]["S"] for item in items)
    assert all(len(item["pk"]["S"].removeprefix("chat#")) == 64 for item in items)  # sha256, scope inside
