"""The Responses policies on their own: previous_response_id expansion against a small in-memory store, the
namespacing of prompt_cache_key, and the pricing of cached prompt tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from mistral_gateway import container
from mistral_gateway.flow import responses, responses_stored
from mistral_gateway.platform import economics
from mistral_gateway.platform.errors import NotFound, ServiceUnavailable
from mistral_gateway.requests import prompt_cache
from mistral_gateway.stores.responses import StoredResponse, StoreUnavailable

NOW = 1_800_000_000.0


@dataclass
class MemoryStore:
    """The ResponsesStore contract over a dict keyed by (caller, id), with a switch that makes it fail."""

    items: dict[tuple[str | None, str], StoredResponse] = field(default_factory=dict)
    failing: bool = False
    reads: int = 0

    def get(self, caller: str | None, response_id: str, now: float) -> StoredResponse | None:
        self.reads += 1
        if self.failing:
            raise StoreUnavailable("get", "ThrottlingException")
        stored = self.items.get((caller, response_id))
        return stored if stored is not None and stored.expires_at > now else None


def message(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "content": text}


def output(text: str) -> list[dict[str, Any]]:
    return [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}]


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    memory = MemoryStore()
    container.start(clock=lambda: NOW)
    monkeypatch.setattr(responses_stored, "table", lambda: memory)
    return memory


def remember(store: MemoryStore, caller: str, response_id: str, context: list[Any], answer: str, **kw: Any) -> None:
    response = {"id": response_id, "object": "response", "output": output(answer)}
    store.items[(caller, response_id)] = StoredResponse(response, context, 1, kw.get("expires_at", int(NOW) + 60))


# --- previous_response_id ----------------------------------------------------------------------------------


def test_a_chain_is_the_stored_context_then_its_output(store: MemoryStore) -> None:
    remember(store, "alice", "resp_1", [message("user", "hi")], "hello")
    history = responses_stored.expanded_history("alice", "resp_1")
    assert history == [message("user", "hi"), *output("hello")]


def test_a_long_chain_is_one_read_of_the_last_turn(store: MemoryStore) -> None:
    remember(store, "alice", "resp_2", [message("user", "a"), *output("b"), message("user", "c")], "d")
    assert len(responses_stored.expanded_history("alice", "resp_2")) == 4 and store.reads == 1


@pytest.mark.parametrize(
    ("caller", "response_id"),
    [("bob", "resp_1"), ("alice", "resp_unknown"), (None, "resp_1"), ("alice", "resp 1"), ("alice", "../x")],
)
def test_anything_not_the_callers_own_is_the_same_not_found(store: MemoryStore, caller: Any, response_id: str) -> None:
    remember(store, "alice", "resp_1", [message("user", "hi")], "hello")
    with pytest.raises(NotFound) as refused:
        responses_stored.expanded_history(caller, response_id)
    assert refused.value.status == 404 and refused.value.code == "response_not_found"
    assert refused.value.param == "previous_response_id"
    assert refused.value.message == f"Response with id '{response_id}' not found."


def test_an_expired_response_cannot_be_chained(store: MemoryStore) -> None:
    remember(store, "alice", "resp_1", [message("user", "hi")], "hello", expires_at=int(NOW))
    with pytest.raises(NotFound):
        responses_stored.expanded_history("alice", "resp_1")


def test_a_failing_store_is_a_503_never_a_partial_history(store: MemoryStore) -> None:
    store.failing = True
    with pytest.raises(ServiceUnavailable) as failed:
        responses_stored.expanded_history("alice", "resp_1")
    assert failed.value.code == "response_store_unavailable"


def test_mistral_is_sent_the_expanded_input_store_false_and_no_previous_id() -> None:
    body = {"model": "m", "input": "x", "previous_response_id": "resp_1", "store": True, "stream": False}
    sent = responses.upstream_body(body, [message("user", "x")], "alice")
    assert sent["input"] == [message("user", "x")] and sent["store"] is False
    assert "previous_response_id" not in sent and "stream" not in sent
    assert sent["prompt_cache_key"] == prompt_cache.namespaced_key("alice", None)


def test_a_string_input_is_one_user_message() -> None:
    assert responses_stored.input_items("hi") == [{"role": "user", "content": "hi"}]
    items = [{"type": "message", "role": "user", "content": "a"}]
    assert responses_stored.input_items(items) == items


def test_the_budget_reads_the_input_as_the_prompt_and_max_output_tokens_as_the_completion() -> None:
    charged = responses.charged_form({"model": "m", "input": [message("user", "x")], "max_output_tokens": 50})
    assert "input" not in charged and charged["max_tokens"] == 50 and charged["context"] == [message("user", "x")]


# --- prompt_cache_key ------------------------------------------------------------------------------------------


def test_two_callers_with_the_same_key_never_share_it() -> None:
    assert prompt_cache.namespaced_key("alice", "shared") != prompt_cache.namespaced_key("bob", "shared")
    assert prompt_cache.namespaced_key("alice", None) != prompt_cache.namespaced_key("bob", None)


def test_a_callers_own_keys_still_group_its_requests() -> None:
    assert prompt_cache.namespaced_key("alice", "k") == prompt_cache.namespaced_key("alice", "k")
    assert prompt_cache.namespaced_key("alice", "k") != prompt_cache.namespaced_key("alice", "other")


def test_the_callers_key_itself_never_reaches_mistral() -> None:
    sent = prompt_cache.namespaced({"prompt_cache_key": "my-tenant-secret-key"}, "alice")["prompt_cache_key"]
    assert "my-tenant-secret-key" not in sent and sent.startswith("gw-") and len(sent) == 43


def test_a_caller_without_a_key_gets_one_of_its_own() -> None:
    assert prompt_cache.namespaced({"model": "m"}, "alice")["prompt_cache_key"] == prompt_cache.namespaced_key(
        "alice", ""
    )


def test_only_pass_through_routes_that_take_a_key_are_rewritten() -> None:
    body = b'{"agent_id": "ag_1", "prompt_cache_key": "k", "messages": []}'
    rewritten = prompt_cache.namespaced_body("agents/completions", body, "alice")
    assert b'"k"' not in (rewritten or b"") and prompt_cache.namespaced_key("alice", "k").encode() in (rewritten or b"")
    assert prompt_cache.namespaced_body("ocr", body, "alice") == body
    assert prompt_cache.namespaced_body("agents/completions", b"not json", "alice") == b"not json"


# --- cached prompt tokens -----------------------------------------------------------------------------------------


def test_cached_prompt_tokens_are_read_from_chat_and_responses_usage() -> None:
    chat = {"prompt_tokens": 100, "completion_tokens": 10, "prompt_tokens_details": {"cached_tokens": 80}}
    assert economics.token_usage(chat) == {"prompt_tokens": 100, "completion_tokens": 10, "cached_tokens": 80}
    shaped = {"input_tokens": 100, "output_tokens": 10, "input_tokens_details": {"cached_tokens": 80}}
    assert economics.token_usage(shaped) == {"prompt_tokens": 100, "completion_tokens": 10, "cached_tokens": 80}
    assert economics.token_usage({"prompt_tokens": 5, "completion_tokens": 1}) == {
        "prompt_tokens": 5,
        "completion_tokens": 1,
    }
    assert (
        economics.token_usage({"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 50}})["cached_tokens"]
        == 5
    )  # never more than the prompt
    assert economics.token_usage("garbage") == {}


def test_cached_prompt_tokens_cost_a_tenth_of_the_input_price() -> None:
    prices = container.start().prices
    model = "mistral-large-latest"  # 0.50 in, 1.50 out per million
    full = prices.cost_usd(model, {"prompt_tokens": 1_000_000, "completion_tokens": 0})
    cached = prices.cost_usd(model, {"prompt_tokens": 1_000_000, "completion_tokens": 0, "cached_tokens": 800_000})
    assert full == pytest.approx(0.50)
    assert cached == pytest.approx(0.50 * 0.2 + 0.50 * 0.8 * 0.10)
    headers = prices.headers_and_metrics(
        model, "MISS", {"prompt_tokens": 10, "completion_tokens": 2, "cached_tokens": 8}
    )
    assert headers["X-Usage-Cached-Prompt-Tokens"] == "8"
    assert float(headers["X-Estimated-Cost-USD"]) == pytest.approx((2 * 0.5 + 8 * 0.05 + 2 * 1.5) / 1_000_000)
