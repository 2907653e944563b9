"""POST /v1/chat/completions through the handler: API Gateway events in, moto for AWS, the emulator upstream."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_dev.emulator.server import Fault

CHAT = "/v1/chat/completions"


def upstream_chat_calls(emulator: Any) -> int:
    return int(emulator.calls(CHAT))


def test_a_first_request_is_answered_by_mistral_and_a_repeat_from_the_cache(gateway, emulator, chat_body) -> None:
    # Given a request never seen before
    body = chat_body("What is the capital of France?")
    # When it is sent twice
    first = gateway.chat(body)
    second = gateway.chat(body)
    # Then Mistral answered once, and the repeat is the same answer from the cache
    assert first.status == 200 and first.header("X-Cache") == "MISS"
    assert second.status == 200 and second.header("X-Cache") == "HIT"
    assert upstream_chat_calls(emulator) == 1
    assert second.body == first.body
    answer = first.json
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"].endswith("What is the capital of France?")
    assert answer["usage"]["prompt_tokens"] > 0
    assert first.header("Content-Type") == "application/json"
    assert second.header("Content-Type") == "application/json"


def test_the_gateway_forwards_the_key_from_secrets_manager(gateway, emulator, chat_body) -> None:
    gateway.chat(chat_body())
    assert emulator.requests[-1].headers["authorization"] == "Bearer test-mistral-key-0123456789"


def test_equivalent_requests_share_the_cache_entry(gateway, emulator, chat_body) -> None:
    gateway.chat(chat_body("same", temperature=1))
    repeat = gateway.chat({"temperature": 1.0, "safe_prompt": False, **chat_body("same"), "stream": False})
    assert repeat.header("X-Cache") == "HIT"
    assert upstream_chat_calls(emulator) == 1


def test_no_cache_skips_the_lookup_but_stores_the_new_answer(gateway, emulator, chat_body) -> None:
    body = chat_body("fresh please")
    gateway.chat(body)
    bypass = gateway.chat(body, headers={"Cache-Control": "no-cache"})
    assert bypass.header("X-Cache") == "BYPASS"
    assert upstream_chat_calls(emulator) == 2
    assert gateway.chat(body).header("X-Cache") == "HIT"


def test_no_store_neither_reads_nor_stores(gateway, emulator, chat_body) -> None:
    body = chat_body("private")
    assert gateway.chat(body, headers={"Cache-Control": "no-store"}).header("X-Cache") == "BYPASS"
    assert gateway.chat(body).header("X-Cache") == "MISS"
    assert upstream_chat_calls(emulator) == 2


def test_max_age_bounds_how_old_a_hit_may_be(gateway, emulator, chat_body, monkeypatch) -> None:
    import time

    body = chat_body("how old")
    gateway.chat(body)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 120)
    assert gateway.chat(body, headers={"Cache-Control": "max-age=60"}).header("X-Cache") == "MISS"
    assert gateway.chat(body, headers={"Cache-Control": "max-age=600"}).header("X-Cache") == "HIT"


def test_an_expired_entry_is_not_served(gateway, emulator, chat_body, monkeypatch) -> None:
    # DynamoDB deletes expired items lazily (moto never does): the code checks expiry itself.
    import time

    body = chat_body("expiring")
    gateway.chat(body)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 86_400 + 5)
    assert gateway.chat(body).header("X-Cache") == "MISS"
    assert upstream_chat_calls(emulator) == 2


def test_two_callers_never_read_each_others_answers(gateway, emulator, chat_body) -> None:
    body = chat_body("same prompt, two tenants")
    assert gateway.chat(body, api_key_id="caller-a").header("X-Cache") == "MISS"
    assert gateway.chat(body, api_key_id="caller-b").header("X-Cache") == "MISS"
    assert gateway.chat(body, api_key_id="caller-a").header("X-Cache") == "HIT"
    assert upstream_chat_calls(emulator) == 2


def test_a_shared_cache_scope_serves_every_caller(gateway, emulator, chat_body, monkeypatch, reconfigure) -> None:

    monkeypatch.setenv("CACHE_SCOPE", "shared")
    reconfigure()
    body = chat_body("shared")
    gateway.chat(body, api_key_id="caller-a")
    assert gateway.chat(body, api_key_id="caller-b").header("X-Cache") == "HIT"


def test_an_incomplete_answer_is_not_cached(gateway, emulator, chat_body) -> None:
    # max_tokens cuts the emulator's answer: finish_reason "length" is still a complete answer...
    body = chat_body("one two three four five six", max_tokens=2)
    assert gateway.chat(body).json["choices"][0]["finish_reason"] == "length"
    assert gateway.chat(body).header("X-Cache") == "HIT"


def test_the_model_allow_list_is_enforced_before_any_work(
    gateway, emulator, chat_body, monkeypatch, reconfigure
) -> None:

    monkeypatch.setenv("ALLOWED_MODELS", "mistral-small-latest, mistral-large-latest")
    reconfigure()
    refused = gateway.chat({**chat_body(), "model": "open-mixtral-8x22b"})
    assert refused.status == 400
    assert refused.json["param"] == "model" and "not enabled" in refused.json["message"]
    assert gateway.chat(chat_body()).status == 200
    assert upstream_chat_calls(emulator) == 1


# --- invalid requests: a clear 4xx, never an upstream call -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, 422, "model"),
        ({"model": "m", "messages": []}, 422, "messages"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, 422, "messages.0"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3}, 422, "temperature"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": "high"}, 422, "top_p"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -5}, 422, "max_tokens"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "bogus": 1}, 422, "bogus"),
    ],
)
def test_invalid_bodies_get_a_422_naming_the_field(gateway, emulator, body, status, param) -> None:
    response = gateway.chat(body)
    assert response.status == status
    error = response.json
    assert error["object"] == "error" and error["type"] == "invalid_request_error"
    assert error["param"].startswith(param)
    assert param.split(".")[0] in error["message"]
    assert error["detail"][0]["loc"][0] == "body"
    assert upstream_chat_calls(emulator) == 0


@pytest.mark.parametrize(
    ("raw", "headers", "status"),
    [
        ("{not json", {}, 400),
        ("[]", {}, 400),
        ("", {}, 400),
        ('{"model": "m"}', {"Content-Type": "text/html"}, 415),
    ],
)
def test_unreadable_bodies_get_a_4xx(gateway, emulator, raw, headers, status) -> None:
    response = gateway.request("POST", CHAT, raw=raw, headers=headers)
    assert response.status == status
    assert response.json["object"] == "error"
    assert response.header("Content-Type") == "application/json"
    assert upstream_chat_calls(emulator) == 0


def test_an_oversized_body_is_a_413(gateway, emulator, chat_body, monkeypatch, reconfigure) -> None:

    monkeypatch.setenv("MAX_BODY_BYTES", "2048")
    reconfigure()
    response = gateway.chat(chat_body("x" * 4096))
    assert response.status == 413
    assert upstream_chat_calls(emulator) == 0


def test_unknown_routes_and_methods_are_json_404_and_405(gateway) -> None:
    missing = gateway.request("GET", "/v1/nothing-here")
    assert missing.status == 404 and missing.json["object"] == "error"
    wrong_method = gateway.request("GET", CHAT)
    assert wrong_method.status == 405 and "not allowed" in wrong_method.json["message"]


# --- upstream failures: documented statuses, JSON bodies, nothing cached ------------------------------------


def assert_nothing_cached(gateway: Any, emulator: Any, body: dict[str, Any]) -> None:
    calls = upstream_chat_calls(emulator)
    assert gateway.chat(body).header("X-Cache") == "MISS"
    assert upstream_chat_calls(emulator) == calls + 1


def test_a_passing_429_is_retried_and_answered(gateway, emulator, chat_body) -> None:
    emulator.script(Fault(status=429, retry_after=0))
    response = gateway.chat(chat_body("retry me"))
    assert response.status == 200 and response.header("X-Cache") == "MISS"
    assert upstream_chat_calls(emulator) == 2


def test_persistent_429_becomes_429_with_retry_after(gateway, emulator, chat_body) -> None:
    emulator.script(*[Fault(status=429, retry_after=0)] * 3)
    body = chat_body("rate limited")
    response = gateway.chat(body)
    assert response.status == 429
    assert response.json["type"] == "rate_limited"
    assert int(response.header("Retry-After") or 0) >= 1
    assert upstream_chat_calls(emulator) == 3
    assert_nothing_cached(gateway, emulator, body)


def test_a_retry_after_longer_than_the_deadline_is_not_waited_for(gateway, emulator, chat_body) -> None:
    emulator.script(Fault(status=429, retry_after=120))
    response = gateway.chat(chat_body("long wait"))
    assert response.status == 429
    assert response.header("Retry-After") == "120"
    assert upstream_chat_calls(emulator) == 1


def test_persistent_5xx_becomes_502(gateway, emulator, chat_body) -> None:
    emulator.script(*[Fault(status=503)] * 3)
    body = chat_body("down")
    response = gateway.chat(body)
    assert response.status == 502 and response.json["type"] == "upstream_error"
    assert upstream_chat_calls(emulator) == 3
    assert_nothing_cached(gateway, emulator, body)


def test_garbage_from_mistral_becomes_502(gateway, emulator, chat_body) -> None:
    emulator.script(Fault(garbage=True))
    body = chat_body("garbage")
    response = gateway.chat(body)
    assert response.status == 502
    assert upstream_chat_calls(emulator) == 1
    assert_nothing_cached(gateway, emulator, body)


def test_a_dropped_connection_is_retried(gateway, emulator, chat_body) -> None:
    emulator.script(Fault(drop=True))
    assert gateway.chat(chat_body("drop once")).status == 200
    assert upstream_chat_calls(emulator) == 2


def test_a_slow_mistral_becomes_504_within_the_deadline(gateway, emulator, chat_body, monkeypatch, reconfigure) -> None:

    # A deadline that leaves the gateway's own work (lookups, lease, budget: tens of ms, more on a loaded CI
    # machine) far from it, and a Mistral slower than all of it
    monkeypatch.setenv("REQUEST_DEADLINE_MS", "3000")
    reconfigure()
    # Warm the new container (its SDK client, key and limits), so the deadline measures only Mistral
    gateway.chat(chat_body("warm: imports and clients are ready, so the deadline measures only Mistral"))
    emulator.reset()
    emulator.script(*[Fault(delay=6.0)] * 3)
    body = chat_body("slow")
    response = gateway.chat(body)
    assert response.status == 504 and response.json["type"] == "upstream_timeout"
    assert upstream_chat_calls(emulator) == 1


def test_mistrals_own_4xx_is_relayed_and_not_cached(gateway, emulator, chat_body) -> None:
    emulator.script(
        Fault(
            status=400,
            body={
                "object": "error",
                "message": "Prompt too long",
                "type": "invalid_request_error",
                "param": None,
                "code": "3051",
            },
        )
    )
    body = chat_body("relay")
    response = gateway.chat(body)
    assert response.status == 400
    assert response.json["message"] == "Prompt too long"
    assert upstream_chat_calls(emulator) == 1
    assert_nothing_cached(gateway, emulator, body)


def test_a_rotated_key_is_reread_once_and_the_request_succeeds(gateway, emulator, chat_body) -> None:
    import boto3

    gateway.chat(chat_body("warm the key cache"))
    # Given the key is rotated: Mistral now wants a new one, and the secret holds it
    emulator.api_key = "rotated-key"
    boto3.client("secretsmanager").put_secret_value(
        SecretId="mistral-gateway/mistral-api-key", SecretString='{"api_key": "rotated-key"}'
    )
    # When a request arrives while the old key is still cached
    response = gateway.chat(chat_body("after rotation"))
    # Then one 401, one re-read, one more attempt
    assert response.status == 200
    assert [r.headers["authorization"] for r in emulator.requests[-2:]] == [
        "Bearer test-mistral-key-0123456789",
        "Bearer rotated-key",
    ]


def test_a_wrong_key_is_not_retried_forever(gateway, emulator, chat_body) -> None:
    emulator.api_key = "a-key-the-secret-does-not-have"
    response = gateway.chat(chat_body("bad key"))
    assert response.status == 502
    assert "credentials" in response.json["message"]
    assert upstream_chat_calls(emulator) == 2


def test_an_unreadable_secret_is_a_503_with_a_generic_message(gateway, emulator, chat_body) -> None:
    import boto3

    boto3.client("secretsmanager").delete_secret(
        SecretId="mistral-gateway/mistral-api-key", ForceDeleteWithoutRecovery=True
    )
    response = gateway.chat(chat_body("no secret"))
    assert response.status == 503
    assert "mistral-gateway/mistral-api-key" not in response.json["message"]
    assert upstream_chat_calls(emulator) == 0
    assert any("Secrets Manager" in r["message"] for r in gateway.log_records())


def test_an_empty_secret_is_a_503(gateway, emulator, chat_body) -> None:
    import boto3

    boto3.client("secretsmanager").put_secret_value(
        SecretId="mistral-gateway/mistral-api-key", SecretString='{"api_key": ""}'
    )
    assert gateway.chat(chat_body("unset key")).status == 503


def test_a_missing_table_fails_open(gateway, emulator, chat_body) -> None:
    import boto3

    boto3.client("dynamodb").delete_table(TableName="mistral-gateway-CacheTable")
    body = chat_body("no table")
    assert gateway.chat(body).status == 200
    assert gateway.chat(body).status == 200
    assert upstream_chat_calls(emulator) == 2
    assert any(r["message"] == "cache unavailable, failing open" for r in gateway.log_records())


# --- observability ----------------------------------------------------------------------------------------


def test_logs_say_what_happened_without_prompts_or_keys(gateway, emulator, chat_body) -> None:
    prompt = "my very private prompt"
    gateway.chat(chat_body(prompt), headers={"Authorization": "Bearer caller-secret-key"})
    gateway.chat(chat_body(prompt))
    records = gateway.log_records()
    served = [r for r in records if r["message"] == "request served"]
    assert [r["cache"] for r in served] == ["MISS", "HIT"]
    assert served[0]["status"] == 200 and served[0]["model"] == "mistral-small-latest"
    assert served[0]["prompt_tokens"] > 0 and "duration_ms" in served[0]
    assert all(r.get("correlation_id") for r in served)
    text = gateway.logs.getvalue()
    for secret_text in (prompt, "caller-secret-key", "test-mistral-key", "Emulated answer"):
        assert secret_text not in text


def test_metrics_are_emitted_in_emf(gateway, emulator, chat_body, emitted_metrics) -> None:
    gateway.chat(chat_body("metrics"))
    gateway.chat(chat_body("metrics"))
    emitted = emitted_metrics()
    assert emitted["CacheMiss"] == 1 and emitted["CacheHit"] == 1
    assert emitted["UpstreamCalls"] == 1 and emitted["PromptTokens"] > 0
    assert emitted["TokensServedFromCache"] > 0 and emitted["ColdStart"] == 1
    assert "UpstreamLatency" in emitted
