"""Model fallbacks and the second upstream: when they answer, when they must not, and what the answer says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_dev.emulator.server import Fault, MistralEmulator

LARGE, MEDIUM, SMALL = "mistral-large-latest", "mistral-medium-latest", "mistral-small-latest"
CHAT = "/v1/chat/completions"


@pytest.fixture
def self_hosted() -> Iterator[MistralEmulator]:
    """A second Mistral-compatible server that takes no key (a vLLM on a private network)."""
    with MistralEmulator(api_key=None) as server:
        yield server


@pytest.fixture
def chains(gateway: Any, self_hosted: MistralEmulator, monkeypatch: pytest.MonkeyPatch, reconfigure) -> Any:
    """Set the operator's chains (and the second upstream) for this test."""

    def configure(chain: dict[str, list[str]]) -> None:
        monkeypatch.setenv("FALLBACK_CHAINS", json.dumps(chain))
        monkeypatch.setenv("SELF_HOSTED_SERVER_URL", self_hosted.url)
        reconfigure()

    return configure


def ask(gateway: Any, model: str = LARGE, text: str = "keep answering", **headers: str) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return gateway.chat(body, headers=headers)


def calls_for(emulator: MistralEmulator, model: str) -> int:
    return sum(1 for r in emulator.requests if r.path == CHAT and isinstance(r.json, dict) and r.json["model"] == model)


@pytest.mark.parametrize(
    ("fault", "attempts", "reason"),
    [
        (Fault(status=429), 3, "rate_limited"),
        (Fault(status=503), 3, "upstream_error"),
        (Fault(garbage=True), 1, "upstream_error"),  # garbage is not retried
        (Fault(drop=True), 3, "upstream_error"),
        (Fault(delay=3.0), 1, "upstream_timeout"),  # a generation that timed out is not retried (issue 21)
    ],
    ids=["rate-limited", "5xx", "garbage", "unreachable", "timeout"],
)
def test_a_failing_model_falls_back_on_each_trigger(
    gateway, emulator, chains, monkeypatch, fault, attempts, reason, reconfigure
) -> None:

    chains({LARGE: [SMALL]})
    monkeypatch.setenv("UPSTREAM_TIMEOUT_MS", "1000")  # a timeout costs a second, not twenty
    reconfigure()
    emulator.script(*[fault] * attempts)  # every attempt of the retry policy fails
    answer = ask(gateway)
    assert answer.status == 200 and answer.json["model"] == SMALL  # Mistral's own field says who answered
    assert answer.header("X-Served-Model") == SMALL and answer.header("X-Served-Upstream") == "mistral"
    assert answer.header("X-Fallback-Reason") == reason
    (line,) = [r for r in gateway.log_records() if r["message"] == "request served"]
    assert line["fallback_from"] == LARGE and line["served_by"] == SMALL and line["fallback_reason"] == reason


def test_no_fallback_on_the_callers_own_mistake(gateway, emulator, chains) -> None:
    chains({LARGE: [SMALL]})
    emulator.script(Fault(status=400))
    answer = ask(gateway)
    assert answer.status == 400 and calls_for(emulator, SMALL) == 0


def test_the_chain_is_tried_in_order_down_to_the_self_hosted_server(gateway, emulator, self_hosted, chains) -> None:
    chains({LARGE: [MEDIUM, f"self-hosted:{SMALL}"]})
    emulator.failing_models = {LARGE: 503, MEDIUM: 429}
    try:
        answer = ask(gateway)
    finally:
        emulator.failing_models = {}
    assert answer.status == 200 and answer.header("X-Served-Upstream") == "self-hosted"
    assert answer.header("X-Served-Model") == SMALL and answer.header("X-Fallback-Reason") == "rate_limited"
    assert [r.json["model"] for r in emulator.requests if r.path == CHAT][::3] == [LARGE, MEDIUM]
    assert calls_for(self_hosted, SMALL) == 1
    assert self_hosted.requests[0].headers["authorization"] == "Bearer none"  # never Mistral's key


def test_one_upstreams_open_circuit_does_not_block_the_other(gateway, emulator, self_hosted, chains) -> None:
    from mistral_gateway.container import current
    from mistral_gateway.upstream import retry as upstream

    chains({LARGE: [f"self-hosted:{SMALL}"]})
    emulator.script(*[Fault(status=503)] * 6)
    for _ in range(2):  # 6 failed attempts: Mistral's circuit opens
        ask(gateway)
    assert current().breaker(upstream.MISTRAL, LARGE).state == "open"  # the requested model's circuit (issue 21)
    answer = ask(gateway, text="while Mistral's circuit is open")
    assert answer.status == 200 and answer.header("X-Fallback-Reason") == "circuit_open"
    assert current().breaker(upstream.SELF_HOSTED).state == "closed"


def test_a_fallback_answer_is_never_cached_as_the_requested_models(gateway, emulator, chains) -> None:
    chains({LARGE: [SMALL]})
    emulator.failing_models = {LARGE: 503}
    try:
        first = ask(gateway)
    finally:
        emulator.failing_models = {}
    again = ask(gateway)  # Mistral is back
    assert first.header("X-Served-Model") == SMALL and again.header("X-Cache") == "MISS"
    assert again.json["model"] == LARGE and again.header("X-Served-Model") is None
    assert ask(gateway).header("X-Cache") == "HIT"  # the requested model's own answer is cached


def test_cost_headers_and_budget_use_the_model_that_answered(gateway, emulator, chains) -> None:
    from gateway_dev.ops import quota as quota_admin

    chains({LARGE: [SMALL]})
    quota_admin.set_limits("mistral-gateway-QuotaTable", "key-fallback", {"tokens_per_day": 100_000})
    emulator.failing_models = {LARGE: 503}
    try:
        body = {"model": LARGE, "messages": [{"role": "user", "content": "priced by who answered"}]}
        answer = gateway.chat(body, api_key_id="key-fallback")
    finally:
        emulator.failing_models = {}
    usage = answer.json["usage"]
    small_price = (usage["prompt_tokens"] * 0.10 + usage["completion_tokens"] * 0.30) / 1_000_000
    assert float(answer.header("X-Estimated-Cost-USD")) == pytest.approx(small_price)
    day = quota_admin.show("mistral-gateway-QuotaTable", "key-fallback")["usage"]["day"]
    assert day["tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_a_caller_can_turn_fallbacks_off_for_one_request(gateway, emulator, chains) -> None:
    chains({LARGE: [SMALL]})
    emulator.failing_models = {LARGE: 503}
    try:
        answer = ask(gateway, **{"X-Gateway-Fallbacks": "off"})
    finally:
        emulator.failing_models = {}
    assert answer.status == 502 and calls_for(emulator, SMALL) == 0


def test_the_deadline_holds_across_the_whole_chain(
    gateway, emulator, self_hosted, chains, monkeypatch, reconfigure
) -> None:

    chains({LARGE: [MEDIUM, f"self-hosted:{SMALL}"]})
    monkeypatch.setenv("REQUEST_DEADLINE_MS", "1500")
    reconfigure()
    emulator.script(*[Fault(delay=3.0)] * 6)
    answer = ask(gateway)
    # The first target used the whole deadline: nothing was left to start another one
    assert answer.status == 504
    assert calls_for(emulator, MEDIUM) == 0 and calls_for(self_hosted, SMALL) == 0


def test_the_fallback_metric_names_from_to_and_reason(gateway, emulator, chains, capsys) -> None:
    chains({LARGE: [f"self-hosted:{SMALL}"]})
    emulator.script(*[Fault(status=503)] * 3)
    ask(gateway)
    fallbacks = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"ModelFallbacks"' in line]
    assert len(fallbacks) == 1
    assert {k: fallbacks[0][k] for k in ("from", "to", "reason")} == {
        "from": LARGE,
        "to": f"self-hosted:{SMALL}",
        "reason": "upstream_error",
    }


def test_a_malformed_chain_turns_fallbacks_off_without_failing_requests(
    gateway, emulator, monkeypatch, reconfigure
) -> None:
    from mistral_gateway.container import settings

    monkeypatch.setenv("FALLBACK_CHAINS", "{not json")
    reconfigure()
    assert settings().fallback_chains == {}
    assert ask(gateway, text="still served").status == 200


@pytest.fixture
def http(gateway: Any, template: Any) -> Iterator[Any]:
    import httpx2

    from gateway_dev.runner.asgi import BackgroundServer, LocalGateway
    from gateway_dev.runner.bridge import ApiBridge

    server = BackgroundServer(LocalGateway(ApiBridge(template)))
    with httpx2.Client(base_url=server.url, timeout=20) as client:
        yield client
    server.stop()


def test_a_stream_falls_back_only_before_its_first_byte(http, emulator, chains) -> None:
    chains({LARGE: [SMALL]})
    stream = {"model": LARGE, "stream": True, "messages": [{"role": "user", "content": "stream with a fallback"}]}
    # Mistral refuses to open the stream: the fallback streams instead, and says so in its headers
    emulator.script(*[Fault(status=503)] * 3)
    with http.stream("POST", CHAT, json=stream) as opened:
        raw = opened.read().decode()
    assert opened.headers["x-served-model"] == SMALL and raw.endswith("data: [DONE]\n\n")
    # Mistral's stream breaks after it started: an error event ends it, and no fallback is asked
    emulator.script(Fault(stream_cut=True))
    with http.stream("POST", CHAT, json=stream) as cut:
        raw = cut.read().decode()
    assert "x-served-model" not in cut.headers and "[DONE]" not in raw and '"error"' in raw
    assert calls_for(emulator, SMALL) == 1


def test_the_self_hosted_key_comes_from_its_own_secret(
    gateway, emulator, self_hosted, chains, monkeypatch, reconfigure
) -> None:
    import boto3

    chains({LARGE: [f"self-hosted:{SMALL}"]})
    arn = boto3.client("secretsmanager").create_secret(Name="self-hosted-key", SecretString="vllm-key-123")["ARN"]
    monkeypatch.setenv("SELF_HOSTED_SECRET_ID", arn)
    reconfigure()
    emulator.script(*[Fault(status=503)] * 3)
    assert ask(gateway).header("X-Served-Upstream") == "self-hosted"
    assert self_hosted.requests[-1].headers["authorization"] == "Bearer vllm-key-123"
    gateway.canaries.add("vllm-key-123")  # and it is never logged
