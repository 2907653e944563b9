"""No caller and no model can take the gateway down for the others; budgets hold without `max_tokens` (issue 21).

Each test replays one finding of the hostile-caller probe with two caller keys: a failing model, slow but valid
answers, plain chats without `max_tokens`, and the models routes under a request budget.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from gateway_dev.emulator.server import Fault

CHAT, EMBED, MODELS = "/v1/chat/completions", "/v1/embeddings", "/v1/models"
LARGE, SMALL, CODE = "mistral-large-latest", "mistral-small-latest", "codestral-latest"
QUOTA_TABLE, ALICE, BOB = "mistral-gateway-QuotaTable", "key-id-alice", "key-id-bob"
MODERATION = {"model": "mistral-moderation-latest", "input": ["hello there"]}
CAPPED = "X-Gateway-Max-Tokens-Capped"


def chat(text: str, model: str = SMALL, **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **fields}


@pytest.fixture(autouse=True)
def shared_account_routes(gateway, monkeypatch, reconfigure) -> None:
    """These tests are about circuits and budgets, not ownership: agents are passed as on a single-tenant
    account (AccountRoutes=shared), so two callers may name the same agent id (tests/integration/
    test_ownership.py pins that they may not under the default, owned)."""
    monkeypatch.setenv("ACCOUNT_ROUTES", "shared")
    reconfigure()


def agent(text: str, **fields: Any) -> dict[str, Any]:
    return {"agent_id": "ag-123", "messages": [{"role": "user", "content": text}], **fields}


def circuit_openings(emitted: dict[str, float]) -> int:
    return int(emitted.get("CircuitOpened", 0))


# --- 1. one failing model leaves the others alone --------------------------------------------------------------


def test_one_callers_failing_model_does_not_pause_another_callers_models(gateway, emulator, emitted_metrics) -> None:
    from mistral_gateway.container import current
    from mistral_gateway.upstream import retry as upstream

    # Given Mistral failing every call for one model
    emulator.failing_models = {LARGE: 503}
    try:
        # When one caller keeps asking for it until its circuit opens
        first = [gateway.chat(chat(f"large {n}", LARGE), api_key_id=ALICE).status for n in range(2)]
        before = emulator.calls()
        paused = gateway.chat(chat("large again", LARGE), api_key_id=ALICE)
        # Then that model fails fast for everyone, without calling Mistral
        assert first[0] == 502 and first[1] in (502, 503)  # 503: the circuit opened between its attempts
        assert paused.status == 503 and paused.json["code"] == "circuit_open"
        assert emulator.calls() == before
        # And the other caller's other model, embeddings, moderations and models are all served by Mistral
        answers = [
            gateway.chat(chat("small", SMALL), api_key_id=BOB),
            gateway.request("POST", EMBED, {"model": "mistral-embed", "input": ["hi"]}, api_key_id=BOB),
            gateway.request("POST", "/v1/moderations", MODERATION, api_key_id=BOB),
            gateway.request("GET", MODELS, headers={"Cache-Control": "no-cache"}, api_key_id=BOB),
            gateway.request("GET", f"{MODELS}/{SMALL}", api_key_id=BOB),
        ]
    finally:
        emulator.failing_models = {}
    assert [answer.status for answer in answers] == [200] * 5
    assert emulator.calls() == before + 5
    assert current().breaker(upstream.MISTRAL).state == "closed"
    assert circuit_openings(emitted_metrics()) == 1  # the one model's circuit, nothing else


def test_a_whole_upstream_outage_still_pauses_every_model(gateway, emulator, monkeypatch, reconfigure) -> None:
    # Given Mistral failing every model (3 distinct models fail, no success in between)
    monkeypatch.setenv("UPSTREAM_MAX_ATTEMPTS", "1")
    reconfigure()
    emulator.failing_models = {LARGE: 503, SMALL: 503, CODE: 503}
    try:
        statuses = [gateway.chat(chat("down", model), api_key_id=ALICE).status for model in (LARGE, SMALL, CODE)]
    finally:
        emulator.failing_models = {}
    assert statuses == [502, 502, 502]
    # Then even a model and a route that never failed fail fast, without calling Mistral
    before = emulator.calls()
    for response in (
        gateway.request("POST", EMBED, {"model": "mistral-embed", "input": ["hi"]}, api_key_id=BOB),
        gateway.request("GET", MODELS, headers={"Cache-Control": "no-cache"}, api_key_id=BOB),
    ):
        assert response.status == 503 and response.json["code"] == "circuit_open"
    assert emulator.calls() == before


def test_connection_failures_pause_the_whole_upstream(gateway, emulator, monkeypatch, reconfigure) -> None:
    monkeypatch.setenv("UPSTREAM_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("CIRCUIT_FAILURE_THRESHOLD", "2")
    reconfigure()
    emulator.script(Fault(drop=True), Fault(drop=True))
    assert [gateway.chat(chat(f"drop {n}", LARGE)).status for n in range(2)] == [502, 502]
    paused = gateway.chat(chat("another model", SMALL))
    assert paused.status == 503 and paused.json["code"] == "circuit_open" and emulator.calls() == 2


def test_a_fallback_target_is_judged_by_its_own_circuit(gateway, emulator, monkeypatch, reconfigure) -> None:
    # Given LARGE paused, and a chain LARGE -> SMALL
    monkeypatch.setenv("FALLBACK_CHAINS", json.dumps({LARGE: [SMALL]}))
    reconfigure()
    emulator.failing_models = {LARGE: 503}
    try:
        for n in range(2):
            gateway.chat(chat(f"large {n}", LARGE), headers={"X-Gateway-Fallbacks": "off"})
        # When a caller asks LARGE with fallbacks on
        answer = gateway.chat(chat("large with fallback", LARGE))
    finally:
        emulator.failing_models = {}
    # Then SMALL answers: LARGE's open circuit is the reason, SMALL's own (closed) circuit lets it through
    assert answer.status == 200 and answer.header("X-Served-Model") == SMALL
    assert answer.header("X-Fallback-Reason") == "circuit_open"


# --- 2. a slow but valid answer is not Mistral failing ------------------------------------------------------------


@pytest.fixture
def impatient(gateway, monkeypatch, reconfigure) -> Any:
    """Attempts give up after 0.5 s (the cloud: 20 s), so a 1 s answer is "long"."""
    monkeypatch.setenv("UPSTREAM_TIMEOUT_MS", "500")
    monkeypatch.setenv("CIRCUIT_FAILURE_THRESHOLD", "2")
    reconfigure()
    return gateway


def test_long_answers_on_batch_and_agents_never_open_the_circuit(impatient, emulator, emitted_metrics) -> None:
    from gateway_dev.ops import quota as quota_admin

    quota_admin.set_limits(QUOTA_TABLE, ALICE, {"tokens_per_day": 1_000_000})
    # Given one caller whose batch items and agents completion all take longer than an attempt may
    emulator.script(*[Fault(delay=1.0)] * 5)
    items = [chat(f"write a long essay {n}", max_tokens=50) for n in range(4)]
    batch = impatient.request("POST", "/v1/batch/chat/completions", {"requests": items}, api_key_id=ALICE)
    slow_agent = impatient.request("POST", "/v1/agents/completions", agent("a long plan"), api_key_id=ALICE)
    # Then each is a 504 (not retried: Mistral may still be writing it, and would bill a second one)
    assert [item["status"] for item in batch.json["data"]] == [504] * 4 and slow_agent.status == 504
    assert emulator.calls() == 5
    # And the circuit stays closed: the other caller is served at once
    assert impatient.chat(chat("quick"), api_key_id=BOB).status == 200
    assert circuit_openings(emitted_metrics()) == 0
    # And the timed-out requests keep their reservations: Mistral will bill what it wrote
    assert quota_admin.show(QUOTA_TABLE, ALICE)["usage"]["day"]["tokens"] >= 4 * 50 + 4_096


def test_batch_and_agents_get_the_long_deadline_chat_has(impatient, http_gateway, emulator, template) -> None:
    import httpx2

    # Given answers slower than an attempt may take on the buffered function (UPSTREAM_TIMEOUT_MS)
    emulator.script(*[Fault(delay=1.0)] * 3)
    # When a batch and an agents completion arrive over HTTP, served as in the cloud (template.yaml's routes)
    items = [chat(f"essay {n}", max_tokens=20) for n in range(2)]
    batch = httpx2.post(f"{http_gateway}/v1/batch/chat/completions", json={"requests": items}, timeout=30)
    answer = httpx2.post(f"{http_gateway}/v1/agents/completions", json=agent("a slow plan"), timeout=30)
    # Then both wait for Mistral's answers: the streaming function's StreamMaxMs deadline, as chat
    assert batch.status_code == 200 and [item["status"] for item in batch.json()["data"]] == [200, 200]
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]
    assert emulator.calls() == 3
    streamed = {route.path for route in template.routes() if route.streams}
    assert {"/v1/batch/chat/completions", "/v1/agents/completions"} <= streamed


@pytest.mark.parametrize(
    "raw",
    ['{"agent_id": "a", "messages": ' + "[" * 990 + "]" * 990 + "}", '{"agent_id": "\\ud800"}', "[1]", "not json"],
    ids=["990 deep", "lone surrogate", "not an object", "not json"],
)
def test_the_long_routes_on_the_streaming_function_refuse_hostile_bodies(http_gateway, emulator, raw) -> None:
    import httpx2

    for path in ("/v1/agents/completions", "/v1/batch/chat/completions"):
        refused = httpx2.post(
            f"{http_gateway}{path}", content=raw, headers={"Content-Type": "application/json"}, timeout=30
        )
        assert 400 <= refused.status_code < 500 and refused.json()["object"] == "error", (path, refused.text[:200])
    assert emulator.calls() == 0


# --- 3. budgets exact without max_tokens ------------------------------------------------------------------------------


@pytest.fixture
def long_answers(emulator, monkeypatch) -> Any:
    """Every answer is 3,000 tokens unless max_tokens cuts it (the emulator counts a word as a token)."""
    monkeypatch.setattr(emulator, "answer_words", 3_000)
    return emulator


def spent(key_id: str) -> int:
    from gateway_dev.ops import quota as quota_admin

    return int(quota_admin.show(QUOTA_TABLE, key_id)["usage"]["minute"]["tokens"])


def test_concurrent_plain_chats_never_spend_past_the_token_budget(gateway, long_answers) -> None:
    from gateway_dev.ops import quota as quota_admin

    quota_admin.set_limits(QUOTA_TABLE, ALICE, {"tokens_per_minute": 12_000})
    # When ten plain chats without max_tokens arrive at once (before the fix: 30,040 tokens spent)
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda n: gateway.chat(chat(f"plain chat {n}"), api_key_id=ALICE), range(10)))
    # Then what Mistral billed stays within the budget
    served = [answer for answer in answers if answer.status == 200]
    billed = sum(answer.json["usage"]["total_tokens"] for answer in served)
    assert billed <= spent(ALICE) <= 12_000
    assert {answer.status for answer in answers} <= {200, 429} and served
    # And every answer says what Mistral was allowed to write, and kept to it
    for answer in served:
        cap = int(answer.header(CAPPED))
        assert answer.json["usage"]["completion_tokens"] <= cap
    # And the other caller's budget is its own
    assert spent(BOB) == 0


def test_streams_and_agents_are_capped_the_same_way(keyed_http_gateway, gateway, long_answers) -> None:
    import httpx2

    from gateway_dev.ops import quota as quota_admin

    url = keyed_http_gateway({"alice-caller-key-0001": ALICE})

    quota_admin.set_limits(QUOTA_TABLE, ALICE, {"tokens_per_minute": 12_000})
    quota_admin.set_limits(QUOTA_TABLE, BOB, {"tokens_per_minute": 12_000})

    def stream(n: int) -> int:
        with httpx2.stream(
            "POST",
            f"{url}{CHAT}",
            json=chat(f"streamed {n}", stream=True),
            headers={"Authorization": "Bearer alice-caller-key-0001"},
            timeout=30,
        ) as response:
            response.read()
            return response.status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        streamed = list(pool.map(stream, range(10)))
        agents = list(
            pool.map(
                lambda n: gateway.request("POST", "/v1/agents/completions", agent(f"agent {n}"), api_key_id=BOB),
                range(10),
            )
        )
    assert 200 in streamed and set(streamed) <= {200, 429}
    assert spent(ALICE) <= 12_000  # before the fix: 27,036
    assert any(answer.status == 200 and answer.header(CAPPED) for answer in agents)
    assert spent(BOB) <= 12_000  # before the fix: 24,032


def test_an_answer_cut_by_the_cap_is_never_served_as_the_uncapped_answer(gateway, long_answers) -> None:
    from gateway_dev.ops import quota as quota_admin

    quota_admin.set_limits(QUOTA_TABLE, ALICE, {"tokens_per_minute": 100_000})
    long_answers.answer_words = 5_000  # longer than the default cap
    first = gateway.chat(chat("a long story"), api_key_id=ALICE)
    assert first.status == 200 and first.json["choices"][0]["finish_reason"] == "length"
    assert first.header(CAPPED) == "4096"
    again = gateway.chat(chat("a long story"), api_key_id=ALICE)
    assert again.header("X-Cache") == "MISS"  # the cut answer was not stored
    # While a complete answer written under the cap is the answer, and is stored
    long_answers.answer_words = 0
    short = gateway.chat(chat("a short story"), api_key_id=ALICE)
    assert short.header(CAPPED) and short.json["choices"][0]["finish_reason"] == "stop"
    assert gateway.chat(chat("a short story"), api_key_id=ALICE).header("X-Cache") == "HIT"


def test_no_room_left_is_a_429_before_mistral(gateway, long_answers) -> None:
    from gateway_dev.ops import quota as quota_admin

    quota_admin.set_limits(QUOTA_TABLE, ALICE, {"tokens_per_minute": 5_000})
    statuses = [gateway.chat(chat(f"plain {n}"), api_key_id=ALICE).status for n in range(3)]
    assert statuses[0] == 200 and 429 in statuses
    assert spent(ALICE) <= 5_000 and long_answers.calls() == statuses.count(200)


# --- 5. the models routes count against budgets ------------------------------------------------------------------


@pytest.mark.parametrize("path", [MODELS, f"{MODELS}/{SMALL}"])
def test_model_routes_that_reach_mistral_count_against_the_request_budget(gateway, emulator, path) -> None:
    from gateway_dev.ops import quota as quota_admin

    quota_admin.set_limits(QUOTA_TABLE, ALICE, {"requests_per_minute": 5})
    # When a caller with 5 requests a minute fetches the models 40 times, bypassing the cache
    answers = [gateway.request("GET", path, headers={"Cache-Control": "no-cache"}, api_key_id=ALICE) for _ in range(40)]
    statuses = [answer.status for answer in answers]
    # Then only 5 reach Mistral; the rest are the caller's 429 (before the fix: 40 x 200, 40 upstream calls)
    assert statuses.count(200) == 5 and statuses.count(429) == 35 and emulator.calls(path) == 5
    assert answers[0].header("RateLimit-Limit") == "5"
    assert answers[-1].json["code"] == "quota_exceeded"
    # And another caller is untouched; a cache hit spends nothing (QuotaCountCacheHits=false)
    assert gateway.request("GET", path, api_key_id=BOB).status == 200
    assert gateway.request("GET", path, api_key_id=ALICE).status == 200
