"""The smaller findings of the hostile-caller probe (issue 21, item 7), each through the public surface:
sub-paths of inference routes, OCR's cache namespace, remote documents spelled oddly, X-Gateway-Fallbacks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway_dev.emulator.server import MistralEmulator

OCR_INLINE = {
    "model": "mistral-ocr-latest",
    "document": {"type": "document_url", "document_url": "data:application/pdf;base64,JVBERi0xLjQK"},
}


@pytest.mark.parametrize("account_routes", ["off", "owned", "shared"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/ocr/files"),
        ("GET", "/v1/ocr/files"),
        ("POST", "/v1/agents/completions/..;/..;/files"),
        ("POST", "/v1/agents/completions/x"),
        ("POST", "/v1/moderations/x"),
        ("POST", "/v1/chat/classifications/x"),
        ("POST", "/v1/audio/speech/voices"),
        ("POST", "/v1/audio/transcriptions/x"),
    ],
)
def test_a_sub_path_of_an_inference_route_is_a_404_that_never_reaches_mistral(
    gateway, emulator, monkeypatch, reconfigure, account_routes: str, method: str, path: str
) -> None:
    # Given any account-routes mode (a sub-path is not an account route in any of them)
    monkeypatch.setenv("ACCOUNT_ROUTES", account_routes)
    reconfigure()
    # When a caller asks for a path below an inference route
    answer = gateway.request(method, path, OCR_INLINE if method == "POST" else None, api_key_id="alice")
    # Then it is the route-not-found 404, in Mistral's shape, and Mistral is never called
    assert answer.status == 404, answer.body[:300]
    assert answer.json["object"] == "error" and "No route for" in answer.json["message"]
    assert emulator.calls() == 0


def test_ocr_sub_paths_share_nothing_with_ocrs_cache(gateway, emulator) -> None:
    # Given an OCR answer in the cache
    assert gateway.request("POST", "/v1/ocr", OCR_INLINE, api_key_id="alice").header("X-Cache") == "MISS"
    # When the same body goes to a sub-path of /v1/ocr
    below = gateway.request("POST", "/v1/ocr/files", OCR_INLINE, api_key_id="alice")
    # Then the cached OCR answer is not served there (a 404), and OCR still hits its own entry
    assert below.status == 404 and below.header("X-Cache") is None
    assert gateway.request("POST", "/v1/ocr", OCR_INLINE, api_key_id="alice").header("X-Cache") == "HIT"
    assert emulator.calls() == 1


@pytest.mark.parametrize(
    "url",
    [" http://example.com/a.pdf", "h\ttp://example.com/a.pdf", "//example.com/a.pdf", "file:///etc/passwd"],
)
def test_a_document_url_spelled_oddly_is_never_cached(gateway, emulator, url: str) -> None:
    # Given an OCR request whose document sits behind a URL, however it is spelled
    body = {"model": "mistral-ocr-latest", "document": {"type": "document_url", "document_url": url}}
    # When it is sent twice
    answers = [gateway.request("POST", "/v1/ocr", body, api_key_id="alice") for _ in range(2)]
    # Then neither answer is stored or served from the cache: both went to Mistral
    assert [a.header("X-Cache") for a in answers if a.status == 200] == ["BYPASS"] * sum(
        a.status == 200 for a in answers
    )
    assert all(a.status < 500 for a in answers)
    assert emulator.calls("/v1/ocr") == 2


LARGE, SMALL = "mistral-large-latest", "mistral-small-latest"


def _ask(gateway: Any, header: str) -> Any:
    body = {"model": LARGE, "messages": [{"role": "user", "content": "exactly the model I named"}]}
    return gateway.chat(body, headers={"X-Gateway-Fallbacks": header})


def _small_calls(emulator: MistralEmulator) -> int:
    return sum(1 for r in emulator.requests if isinstance(r.json, dict) and r.json.get("model") == SMALL)


@pytest.fixture
def failing_large(gateway: Any, emulator: MistralEmulator, monkeypatch: pytest.MonkeyPatch, reconfigure: Any) -> Any:
    monkeypatch.setenv("FALLBACK_CHAINS", json.dumps({LARGE: [SMALL]}))
    reconfigure()
    emulator.failing_models = {LARGE: 503}
    yield
    emulator.failing_models = {}


@pytest.mark.parametrize("header", ["none", "disabled", "OFF", " off ", "false", "0", "no"])
def test_every_documented_spelling_of_off_disables_fallbacks(gateway, emulator, failing_large, header: str) -> None:
    answer = _ask(gateway, header)
    assert answer.status == 502 and _small_calls(emulator) == 0


@pytest.mark.parametrize("header", ["off;", "off, on", "of", "nope"])
def test_an_unknown_fallbacks_value_is_a_400_before_any_call(gateway, emulator, failing_large, header: str) -> None:
    answer = _ask(gateway, header)
    assert answer.status == 400 and answer.json["code"] == "invalid_header"
    assert "X-Gateway-Fallbacks" in answer.json["message"] or answer.json["param"] == "x-gateway-fallbacks"
    assert emulator.calls() == 0


def test_fallbacks_still_answer_when_allowed(gateway, emulator, failing_large) -> None:
    answer = _ask(gateway, "on")
    assert answer.status == 200 and answer.header("X-Served-Model") == SMALL
