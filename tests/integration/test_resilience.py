"""Whatever Mistral, DynamoDB or Secrets Manager do, every request gets a right answer or a clear JSON error.

Faults come from the emulator (Mistral's wire format over HTTP) and from botocore's own event hooks on the
gateway's real clients (so DynamoDB and Secrets Manager fail exactly where boto3 would raise). Each case
checks the status, the body's shape, how often Mistral was called, and that nothing wrong was cached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from retried_calls import SentTwice

from gateway_dev.emulator.server import Fault

CHAT = "/v1/chat/completions"
TABLE = "mistral-gateway-CacheTable"


def is_mistral_error(body: Any) -> bool:
    return body.get("object") == "error" and isinstance(body.get("message"), str) and "Traceback" not in str(body)


def stored_answers() -> list[dict[str, Any]]:
    import boto3

    return [item for item in boto3.client("dynamodb").scan(TableName=TABLE)["Items"] if "body" in item]


@pytest.fixture
def inject(gateway: Any) -> Iterator[Callable[[str, str, Exception], None]]:
    """inject("dynamodb", "GetItem", error): the gateway's own boto3 client raises `error` on that call."""
    from mistral_gateway.container import current

    registered: list[tuple[Any, str, Any]] = []

    def add(service: str, operation: str, error: Exception) -> None:
        def fail(**_: Any) -> None:
            raise error

        events = current().aws_client(service).meta.events
        event = f"before-call.{'secrets-manager' if service == 'secretsmanager' else service}.{operation}"
        events.register(event, fail)
        registered.append((events, event, fail))

    yield add
    for events, event, handler in registered:
        events.unregister(event, handler)


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, operation)


# --- Mistral: the fault matrix -----------------------------------------------------------------------------------

GARBAGE = Fault(garbage=True)
# name -> (faults the emulator plays, status the caller gets, Mistral calls made, whether the answer is stored)
MISTRAL_FAULTS: dict[str, tuple[list[Fault], int, int, bool]] = {
    "429 once": ([Fault(status=429, retry_after=0.1)], 200, 2, True),
    "429 persistent": ([Fault(status=429, retry_after=0.1)] * 3, 429, 3, False),
    "503 once": ([Fault(status=503)], 200, 2, True),
    "5xx persistent": ([Fault(status=500), Fault(status=502), Fault(status=504)], 502, 3, False),
    "garbage body": ([GARBAGE], 502, 1, False),
    "dropped connection once": ([Fault(drop=True)], 200, 2, True),
    "dropped connection persistent": ([Fault(drop=True)] * 3, 502, 3, False),
    "refused request (400)": ([Fault(status=400)], 400, 1, False),
}


@pytest.mark.parametrize("name", sorted(MISTRAL_FAULTS))
def test_each_mistral_fault_gets_its_status_and_nothing_wrong_is_cached(gateway, emulator, chat_body, name) -> None:
    faults, status, calls, stored = MISTRAL_FAULTS[name]
    emulator.script(*faults)
    response = gateway.chat(chat_body(f"fault matrix: {name}"))
    assert response.status == status
    if status == 200:
        assert response.json["object"] == "chat.completion" and response.header("X-Cache") == "MISS"
    else:
        assert is_mistral_error(response.json) or name.startswith("refused")  # a refusal is relayed as Mistral wrote it
        assert response.header("Content-Type") == "application/json"
    if status == 429:
        assert int(response.header("Retry-After")) >= 1
    assert emulator.calls(CHAT) == calls
    assert bool(stored_answers()) is stored


# --- DynamoDB: the cache fails open ---------------------------------------------------------------------------

DYNAMODB_FAULTS = {
    "get throttled": ("GetItem", client_error("ProvisionedThroughputExceededException", "GetItem")),
    "get timeout": ("GetItem", ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")),
    "get denied": ("GetItem", client_error("AccessDeniedException", "GetItem")),
    "put throttled": ("PutItem", client_error("ThrottlingException", "PutItem")),
    "put denied": ("PutItem", client_error("AccessDeniedException", "PutItem")),
    "claim throttled": ("UpdateItem", client_error("ProvisionedThroughputExceededException", "UpdateItem")),
}


@pytest.mark.parametrize("fault", sorted(DYNAMODB_FAULTS))
def test_a_failing_cache_never_fails_the_request(
    gateway, emulator, inject, chat_body, emitted_metrics, monkeypatch, reconfigure, fault
) -> None:
    # Given DynamoDB failing on one operation
    operation, error = DYNAMODB_FAULTS[fault]
    if operation == "GetItem":
        # A miss that takes the single-flight lease looks up with that UpdateItem ("claim" faults); a GetItem is
        # the lookup of the requests that take none (streams, SINGLE_FLIGHT_WAIT_MS=0) and a waiter's poll.
        monkeypatch.setenv("SINGLE_FLIGHT_WAIT_MS", "0")
        reconfigure()
    inject("dynamodb", operation, error)
    # When a request arrives
    response = gateway.chat(chat_body(f"cache fault {fault}"))
    # Then Mistral answers it, with a warning and a CacheError metric
    assert response.status == 200 and response.json["object"] == "chat.completion"
    assert emulator.calls(CHAT) == 1
    warnings = [r for r in gateway.log_records() if r["message"] == "cache unavailable, failing open"]
    assert warnings and warnings[0]["level"] == "WARNING"
    assert emitted_metrics()["CacheError"] >= 1
    if operation == "PutItem":
        assert stored_answers() == []


# --- Secrets Manager --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["AccessDeniedException", "ResourceNotFoundException", "DecryptionFailure"])
def test_an_unreadable_secret_is_a_503_for_the_caller_and_a_clear_log_for_the_operator(
    gateway, emulator, inject, chat_body, code
) -> None:
    inject("secretsmanager", "GetSecretValue", client_error(code, "GetSecretValue"))
    response = gateway.chat(chat_body("secret fault"))
    assert response.status == 503 and is_mistral_error(response.json)
    assert "mistral-gateway/mistral-api-key" not in response.text and code not in response.text  # generic
    assert emulator.calls(CHAT) == 0 and stored_answers() == []
    operator_lines = [r for r in gateway.log_records() if r["level"] == "ERROR"]
    assert any(code in str(r) for r in operator_lines), "the operator's log names the cause"


# --- the circuit breaker ---------------------------------------------------------------------------------------


@pytest.fixture
def fragile(monkeypatch: pytest.MonkeyPatch, gateway: Any, reconfigure) -> Any:
    """One attempt per request, a circuit that opens after 2 failures and cools down in 1 s."""

    monkeypatch.setenv("UPSTREAM_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("CIRCUIT_FAILURE_THRESHOLD", "2")
    monkeypatch.setenv("CIRCUIT_COOLDOWN_SECONDS", "1")
    reconfigure()
    return gateway


def test_the_circuit_opens_fails_fast_then_recovers(fragile, emulator, chat_body, emitted_metrics) -> None:
    # Given Mistral failing twice in a row
    emulator.script(Fault(status=503), Fault(status=500))
    assert [fragile.chat(chat_body(f"down {n}")).status for n in range(2)] == [502, 502]
    # When the next request arrives during the cool-down
    fast = fragile.chat(chat_body("during cool-down"))
    # Then it fails fast: 503 with Retry-After, and Mistral is not called
    assert fast.status == 503 and fast.json["code"] == "circuit_open" and int(fast.header("Retry-After")) >= 1
    assert emulator.calls(CHAT) == 2
    # And after the cool-down one trial goes through, succeeds, and closes the circuit
    time.sleep(1.05)
    assert fragile.chat(chat_body("after cool-down")).status == 200
    assert fragile.chat(chat_body("closed again")).status == 200
    emitted = emitted_metrics()
    assert (emitted["CircuitOpened"], emitted["CircuitHalfOpen"], emitted["CircuitClosed"]) == (1, 1, 1)


def test_a_failed_trial_opens_the_circuit_again(fragile, emulator, chat_body) -> None:
    emulator.script(Fault(status=503), Fault(status=503), Fault(drop=True))
    for n in range(2):
        fragile.chat(chat_body(f"down {n}"))
    time.sleep(1.05)
    assert fragile.chat(chat_body("trial")).status == 502  # the trial fails
    assert fragile.chat(chat_body("open again")).status == 503
    assert emulator.calls(CHAT) == 3


def test_rate_limiting_and_rejected_requests_do_not_open_the_circuit(fragile, emulator, chat_body) -> None:
    emulator.script(*[Fault(status=429, retry_after=1)] * 2, *[Fault(status=400)] * 2)
    statuses = [fragile.chat(chat_body(f"limited {n}")).status for n in range(4)]
    assert statuses == [429, 429, 400, 400]
    assert fragile.chat(chat_body("still closed")).status == 200


# --- stale-if-error ---------------------------------------------------------------------------------------------


@pytest.fixture
def expired(gateway: Any, emulator: Any, chat_body: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A cached answer, then the clock moved past its freshness (but within the stale window)."""
    body = chat_body("an answer that will expire")
    first = gateway.chat(body, headers={"Cache-Control": "max-age=60"})
    assert first.header("X-Cache") == "MISS"
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 120)
    return {"body": body, "answer": first.body}


@pytest.mark.parametrize("fault", [Fault(status=503), Fault(status=429, retry_after=0.2), Fault(drop=True)])
def test_an_expired_answer_is_served_when_mistral_fails(gateway, emulator, expired, emitted_metrics, fault) -> None:
    emulator.script(*[fault] * 3)
    response = gateway.chat(expired["body"])
    assert response.status == 200 and response.header("X-Cache") == "STALE"
    assert response.body == expired["answer"]
    assert emitted_metrics()["CacheStale"] == 1


def test_no_cache_turns_stale_if_error_off(gateway, emulator, expired) -> None:
    emulator.script(*[Fault(status=503)] * 3)
    response = gateway.chat(expired["body"], headers={"Cache-Control": "no-cache"})
    assert response.status == 502 and is_mistral_error(response.json)


def test_stale_is_never_served_beyond_its_window(gateway, emulator, expired, monkeypatch, reconfigure) -> None:

    monkeypatch.setenv("STALE_IF_ERROR_SECONDS", "30")  # expired 60 s ago
    reconfigure()
    emulator.script(*[Fault(status=503)] * 3)
    assert gateway.chat(expired["body"]).status == 502


def test_a_working_mistral_replaces_the_expired_answer(gateway, emulator, expired) -> None:
    assert gateway.chat(expired["body"]).header("X-Cache") == "MISS"
    assert gateway.chat(expired["body"]).header("X-Cache") == "HIT"


# --- single-flight ---------------------------------------------------------------------------------------------


@pytest.fixture
def warm(gateway: Any, emulator: Any, chat_body: Any) -> Any:
    """A warm container (imports done), so concurrent requests really arrive together."""
    gateway.chat(chat_body("warm-up"))
    emulator.reset()
    return gateway


def together(count: int, send: Callable[[int], Any]) -> list[Any]:
    """Run `send(i)` for i in range(count) at the same moment from separate threads."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        start.wait()
        results[index] = send(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_identical_concurrent_requests_make_one_upstream_call(warm, emulator, chat_body) -> None:
    # Given a slow Mistral and six identical requests arriving together
    emulator.script(Fault(delay=0.4))
    responses = together(6, lambda _: warm.chat(chat_body("everyone asks this at once")))
    # Then one asked Mistral and the others got its answer from the cache
    assert [r.status for r in responses] == [200] * 6
    assert sorted(r.header("X-Cache") for r in responses) == ["HIT"] * 5 + ["MISS"]
    assert len({r.body for r in responses}) == 1
    assert emulator.calls(CHAT) == 1


def test_concurrent_callers_never_get_each_others_answers(warm, emulator, chat_body) -> None:
    emulator.script(Fault(delay=0.3))
    responses = together(4, lambda i: warm.chat(chat_body("same words"), api_key_id=f"tenant-{i % 2}"))
    assert [r.status for r in responses] == [200] * 4
    assert emulator.calls(CHAT) == 2  # one per tenant


def test_when_the_first_caller_fails_the_others_ask_mistral_themselves(warm, emulator, chat_body) -> None:
    emulator.script(Fault(status=400, delay=0.3))  # the leader's request is refused
    responses = together(3, lambda _: warm.chat(chat_body("leader fails")))
    # The waiters did not inherit the leader's failure: each asked Mistral itself once the lease was released
    assert sorted(r.status for r in responses) == [200, 200, 400]
    assert 2 <= emulator.calls(CHAT) <= 3  # 2 when the last arrival found a waiter's stored answer
    assert stored_answers() and all("lease_owner" not in item for item in stored_answers())


def test_a_dead_leaders_lease_does_not_hang_anyone(gateway, emulator, chat_body, emitted_metrics) -> None:
    from mistral_gateway.container import current
    from mistral_gateway.flow.answers import cache_scope
    from mistral_gateway.requests.canonical import cache_key, canonical_chat

    body = chat_body("the leader died")
    key = cache_key("chat", cache_scope(None), canonical_chat(body))
    # A leader that will never store or release (2 s: long enough that a loaded machine still finds it live)
    lease, _ = current().answers.claim(key, lease_seconds=2.0)
    assert lease is not None
    response = gateway.chat(body)
    assert response.status == 200 and response.header("X-Cache") == "MISS"
    # It waited, and stopped when the lease lapsed, not at the end of its waiting budget (8 s)
    assert emitted_metrics()["SingleFlightWaits"] == 1
    messages = [record["message"] for record in gateway.log_records()]
    assert "single-flight wait timed out; calling Mistral" not in messages
    assert emulator.calls(CHAT) == 1


def test_a_lookup_retried_after_its_lease_landed_leads_instead_of_waiting_on_itself(
    gateway, emulator, chat_body, emitted_metrics, monkeypatch
) -> None:
    from mistral_gateway.container import current

    # Given a lookup whose lease write landed, lost its answer and was sent again
    answers = current().answers
    lossy = SentTwice(answers.dynamodb, "update_item", lambda call: ":owner," in call.get("UpdateExpression", ""))
    monkeypatch.setattr(answers, "dynamodb", lossy)
    # When the miss is asked
    response = gateway.chat(chat_body("the first answer was lost"))
    # Then it leads at once (its own lease is not another caller's) and stores its answer
    assert response.status == 200 and response.header("X-Cache") == "MISS"
    assert lossy.repeated == 1
    assert emitted_metrics().get("SingleFlightWaits", 0) == 0
    assert emulator.calls(CHAT) == 1
    stored = [item for item in stored_answers() if "lease_owner" not in item]
    assert len(stored) == 1
    # And the same request again is a hit
    assert gateway.chat(chat_body("the first answer was lost")).header("X-Cache") == "HIT"
