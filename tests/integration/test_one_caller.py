"""One caller must never hurt another (issue 14): what one caller sends cannot open the circuit for everyone,
outlive the operator's TTL, or be served a hit that validation would have refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

CHAT, EMBED = "/v1/chat/completions", "/v1/embeddings"
TOOL_WITHOUT_PARAMETERS = [{"type": "function", "function": {"name": "lookup"}}]


def circuit() -> Any:
    from mistral_gateway.container import current
    from mistral_gateway.upstream.retry import MISTRAL

    return current().breaker(MISTRAL)  # the one `call` uses (the cache keys on the argument as given)


# --- the breaker learns only from Mistral ---------------------------------------------------------------------


def test_requests_the_sdk_refuses_are_422s_that_never_reach_the_breaker(gateway, emulator, chat_body) -> None:
    threshold = circuit().threshold
    for n in range(threshold + 2):
        response = gateway.chat(chat_body(f"refused {n}", tools=TOOL_WITHOUT_PARAMETERS))
        assert response.status == 422, response.body[:300]
        assert response.json["code"] == "sdk_refused" and response.json["param"] == "parameters"
        assert "parameters" in response.json["message"]
    named_choice_without_name = chat_body("refused", tool_choice={"type": "function", "function": {}})
    assert gateway.chat(named_choice_without_name).json["code"] == "sdk_refused"
    assert emulator.calls() == 0
    assert (circuit().state, circuit().failures) == ("closed", 0)
    assert gateway.chat(chat_body("another caller")).status == 200


def test_a_refusal_inside_the_upstream_call_is_the_callers_and_garbage_is_mistrals(gateway) -> None:
    import httpx2

    from mistral_gateway.container import current
    from mistral_gateway.platform.deadline import Deadline
    from mistral_gateway.platform.errors import RequestValidationFailed, UpstreamError
    from mistral_gateway.upstream import retry as upstream

    via = current().upstream(upstream.MISTRAL)

    def refused(timeout_ms: int) -> None:
        raise ValueError("the SDK refused this request")  # nothing was sent: no response for this attempt

    def garbage(timeout_ms: int) -> None:
        upstream.remember(httpx2.Response(200, content=b"<html>oops"))  # what the response hook records
        raise ValueError("not JSON")

    for _ in range(circuit().threshold + 1):
        with pytest.raises(RequestValidationFailed):
            upstream.call(refused, Deadline.start(5_000), via=via, operation="chat")
    assert (circuit().state, circuit().failures) == ("closed", 0)
    with pytest.raises(UpstreamError):
        upstream.call(garbage, Deadline.start(5_000), via=via, operation="chat")
    assert circuit().failures == 1
    with pytest.raises(RequestValidationFailed):  # a stale response of an earlier attempt does not count
        upstream.call(refused, Deadline.start(5_000), via=via, operation="chat")


def test_embeddings_the_sdk_cannot_read_back_are_refused_before_mistral(gateway, emulator) -> None:
    body = {"model": "mistral-embed", "input": "x", "output_dtype": "int8", "encoding_format": "base64"}
    for _ in range(circuit().threshold + 1):
        response = gateway.request("POST", EMBED, body)
        assert response.status == 422 and response.json["param"] == "encoding_format"
    assert emulator.calls() == 0 and circuit().state == "closed"


@pytest.mark.parametrize(
    ("status", "content", "kind"),
    [(200, b'{"object": "surprise"}', "unexpected_shape"), (200, b"<html>oops", "garbage"), (500, b"{}", "garbage")],
)
def test_an_unreadable_answer_is_classified_by_what_mistral_sent(status: int, content: bytes, kind: str) -> None:
    import httpx2

    from mistral_gateway.upstream import refusals

    response = httpx2.Response(status, content=content)
    assert refusals.classify(ValueError("bad"), response).kind == kind
    assert refusals.classify(ValueError("bad"), None).error.status == 422


def test_an_answer_of_an_unexpected_shape_does_not_open_the_circuit() -> None:
    from mistral_gateway.policies.circuit import TRIPPING_KINDS

    assert "unexpected_shape" not in TRIPPING_KINDS and "garbage" in TRIPPING_KINDS


# --- the operator's TTL is a ceiling ------------------------------------------------------------------------------


def stored_items() -> list[dict[str, Any]]:
    import boto3

    items = boto3.client("dynamodb").scan(TableName="mistral-gateway-CacheTable")["Items"]
    return [item for item in items if "body" in item]


@pytest.fixture
def operator_ttl(gateway: Any, monkeypatch: pytest.MonkeyPatch, reconfigure) -> Any:

    def set_ttl(seconds: int) -> Any:
        monkeypatch.setenv("CACHE_TTL_SECONDS", str(seconds))
        reconfigure()
        return gateway

    return set_ttl


def test_a_ttl_of_zero_stores_nothing_whatever_the_caller_asks(operator_ttl, emulator, chat_body) -> None:
    gateway = operator_ttl(0)
    for _ in range(2):
        response = gateway.chat(chat_body("keep this for a month"), headers={"Cache-Control": "max-age=2592000"})
        assert response.status == 200 and response.header("X-Cache") == "MISS"
    assert gateway.chat(chat_body("keep this for a month")).header("X-Cache") == "MISS"
    assert stored_items() == [] and emulator.calls() == 3


def test_max_age_can_shorten_the_operators_ttl_but_never_extend_it(operator_ttl, chat_body) -> None:
    gateway = operator_ttl(60)
    gateway.chat(chat_body("long"), headers={"Cache-Control": "max-age=2592000"})
    gateway.chat(chat_body("short"), headers={"Cache-Control": "max-age=10"})
    lifetimes = sorted(int(i["fresh_until"]["N"]) - int(i["created_at"]["N"]) for i in stored_items())
    assert lifetimes == [10, 60]


def test_the_ttl_policy_on_its_own() -> None:
    from mistral_gateway.requests.http import CacheControl

    assert CacheControl.parse("max-age=99999").ttl(60) == 60
    assert CacheControl.parse("max-age=5").ttl(60) == 5
    assert CacheControl.parse(None).ttl(60) == 60
    assert CacheControl.parse("max-age=600").ttl(0) == 0


# --- nothing a request chooses is logged unbounded ----------------------------------------------------------------

LONGEST_LOG_LINE = 4_096


@pytest.mark.parametrize("allowed", ["", "mistral-small-latest"])
def test_a_huge_model_name_or_path_writes_no_huge_log_line(
    gateway, chat_body, monkeypatch, allowed, reconfigure
) -> None:

    monkeypatch.setenv("ALLOWED_MODELS", allowed)
    reconfigure()
    huge = "m" * 900_000
    assert gateway.chat({**chat_body("hi"), "model": huge}).status in (400, 422)
    assert gateway.request("POST", EMBED, {"model": huge, "input": "x"}).status in (400, 422)
    assert len(gateway.last_result["body"]) < LONGEST_LOG_LINE  # nor is it echoed back whole
    assert gateway.request("GET", "/v1/" + "x" * 8_000).status == 404
    lines = gateway.logs.getvalue().splitlines()
    assert lines and max(len(line) for line in lines) < LONGEST_LOG_LINE


def test_an_unexpected_error_logs_its_frames_not_its_message(gateway, chat_body, monkeypatch) -> None:
    from mistral_gateway.flow import completions

    quoted = "quoting the request: " + "my secret prompt " * 50_000

    def explode(*_: Any, **__: Any) -> None:
        raise RuntimeError(quoted)

    monkeypatch.setattr(completions, "chat_completion", explode)
    response = gateway.chat(chat_body("anything"))
    assert response.status == 500 and "secret" not in response.text
    (record,) = [r for r in gateway.log_records() if r["message"] == "unexpected error"]
    assert record["error_class"] == "RuntimeError" and "explode" in record["frames"]
    assert "my secret prompt" not in gateway.logs.getvalue()
    assert max(len(line) for line in gateway.logs.getvalue().splitlines()) < 3 * LONGEST_LOG_LINE


def test_bounded_marks_what_it_cut() -> None:
    from mistral_gateway.platform.observability import MAX_LOGGED_CHARS, bounded

    assert bounded("short") == "short" and bounded(None) is None and bounded(7) == 7
    cut = bounded("x" * 10_000)
    assert cut.startswith("x" * MAX_LOGGED_CHARS) and cut.endswith("[10000 chars]") and len(cut) < 300


# --- the same answer to the same question, hit or miss ------------------------------------------------------------

# Each was served as a HIT of the valid request it canonicalises to, though validation refuses it.
INVALID_TWINS = {
    "stream_options not an object": {"stream_options": 5},
    "tool_calls on a user message": {"messages": [{"role": "user", "content": "twin", "tool_calls": []}]},
    "junk seed beside random_seed": {"seed": "junk", "random_seed": 7},
    "unknown field set to null": {"colour": None},
    "unknown message field set to null": {"messages": [{"role": "user", "content": "twin", "name": None}]},
    "unknown service tier": {"service_tier": "platinum"},
    "metadata not an object": {"metadata": ["a"]},
    "temperature as a string": {"temperature": "0.5"},
    "max_tokens true": {"max_tokens": True},
    "n a string": {"n": "1"},
    "n true": {"n": True},
}


@pytest.mark.parametrize("name", sorted(INVALID_TWINS))
def test_a_hit_is_only_served_to_a_request_validation_accepts(gateway, emulator, chat_body, name) -> None:
    valid = chat_body("twin", random_seed=7)
    assert gateway.chat(valid).status == 200
    assert gateway.chat(valid).header("X-Cache") == "HIT"
    response = gateway.chat({**valid, **INVALID_TWINS[name]})
    assert response.status == 422, (response.status, response.header("X-Cache"))
    assert response.header("X-Cache") is None and response.json["param"]
    assert emulator.calls() == 1


@pytest.mark.parametrize(("field", "value"), [("max_tokens", True), ("temperature", "0.5"), ("random_seed", 1.5)])
def test_no_lax_coercion_reaches_mistral(gateway, emulator, chat_body, field, value) -> None:
    response = gateway.chat(chat_body("lax", **{field: value}))
    assert response.status == 422 and response.json["param"] == field
    assert emulator.calls() == 0


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"n": 1.0}, {}),
        ({"max_tokens": 50.0}, {"max_tokens": 50}),
        ({"temperature": 1}, {"temperature": 1.0}),
        ({"random_seed": 3.0, "top_p": 1}, {"random_seed": 3}),
    ],
)
def test_numerically_equal_requests_share_an_entry(gateway, emulator, chat_body, first, second) -> None:
    assert gateway.chat(chat_body("equal", **first)).header("X-Cache") == "MISS"
    assert gateway.chat(chat_body("equal", **second)).header("X-Cache") == "HIT"
    sent = emulator.requests[-1].json
    for field, value in first.items():  # Mistral got whole numbers as integers
        if field in ("max_tokens", "random_seed", "n"):
            assert sent.get(field, 1) == value and type(sent.get(field, 1)) is int


# --- token budgets cannot be overspent ----------------------------------------------------------------------------

QUOTA_TABLE, MALLORY = "mistral-gateway-QuotaTable", "key-id-mallory"


def test_a_budget_is_never_overspent_by_a_prompt_that_costs_more_than_it_looks(gateway, emulator, chat_body) -> None:
    from gateway_dev.ops import quota as quota_admin

    quota_admin.set_limits(QUOTA_TABLE, MALLORY, {"tokens_per_minute": 12_000})
    words = "a " * 15_000  # 30,000 characters, 15,000 tokens in the emulator's count
    response = gateway.chat(chat_body(words, max_tokens=10), api_key_id=MALLORY)
    assert response.status == 429 and response.json["code"] == "quota_exceeded"
    assert emulator.calls() == 0
    assert quota_admin.show(QUOTA_TABLE, MALLORY)["usage"]["minute"]["tokens"] <= 12_000


def test_what_is_settled_never_exceeds_what_was_reserved(gateway, emulator, chat_body, monkeypatch) -> None:
    from gateway_dev.ops import quota as quota_admin
    from mistral_gateway.policies import quota

    quota_admin.set_limits(QUOTA_TABLE, MALLORY, {"tokens_per_day": 10_000_000})
    settled: list[tuple[int, int]] = []
    settle = quota.Budgets.settle

    def spy(budgets: quota.Budgets, reservation: Any, actual: int) -> None:
        settled.append((reservation.tokens, actual))
        settle(budgets, reservation, actual)

    monkeypatch.setattr(quota.Budgets, "settle", spy)
    bodies = [
        chat_body("a " * 15_000),
        chat_body("é " * 5_000, n=3, max_tokens=20),
        chat_body("tools", tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]),
        {"model": "mistral-embed", "input": ["b " * 5_000, "c " * 5_000]},
    ]
    for body in bodies:
        path = EMBED if "input" in body else CHAT
        assert gateway.request("POST", path, body, api_key_id=MALLORY).status == 200
    assert len(settled) == len(bodies)
    assert all(actual <= reserved for reserved, actual in settled), settled


# --- a batch counts per item ----------------------------------------------------------------------------------------


def test_every_batch_item_counts_against_the_callers_budgets(gateway, emulator, chat_body) -> None:
    from gateway_dev.ops import quota as quota_admin

    quota_admin.set_limits(QUOTA_TABLE, MALLORY, {"requests_per_minute": 3})
    items = [chat_body(f"batch item {n}", max_tokens=5) for n in range(5)]
    response = gateway.request("POST", "/v1/batch/chat/completions", {"requests": items}, api_key_id=MALLORY)
    assert response.status == 200
    statuses = sorted(item["status"] for item in response.json["data"])
    assert statuses == [200, 200, 200, 429, 429]
    assert emulator.calls() == 3
    assert quota_admin.show(QUOTA_TABLE, MALLORY)["usage"]["minute"]["requests"] == 3


# --- the same on the streaming function ---------------------------------------------------------------------------

STREAMED_HOSTILE = {
    "lone surrogate": {"messages": [{"role": "user", "content": "\ud800"}]},
    "too deep": {"metadata": {"a": json.loads("[" * 70 + "]" * 70)}},
    "tool the SDK refuses": {"tools": TOOL_WITHOUT_PARAMETERS},
    "junk seed beside random_seed": {"seed": "junk", "random_seed": 7},
    "max_tokens true": {"max_tokens": True},
    "huge model name": {"model": "m" * 300_000},
    "null unknown field": {"colour": None},
}


def test_hostile_streamed_requests_are_4xx_before_the_first_byte(http_gateway, gateway, emulator, chat_body) -> None:
    import httpx2

    with httpx2.Client(base_url=http_gateway, timeout=20) as client:
        valid = chat_body("streamed twin", random_seed=7, stream=True)
        assert client.post(CHAT, json=valid).status_code == 200  # cached: each twin below would key like it
        calls = emulator.calls()
        for name, hostile in STREAMED_HOSTILE.items():
            response = client.post(CHAT, content=json.dumps({**valid, **hostile}))
            assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:200])
            assert response.json()["object"] == "error" and "x-cache" not in response.headers, name
    assert emulator.calls() == calls
    assert (circuit().state, circuit().failures) == ("closed", 0)
    assert max(len(line) for line in gateway.logs.getvalue().splitlines()) < LONGEST_LOG_LINE
