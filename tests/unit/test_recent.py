"""The container's recent answers (recent.py), alone and in front of the answer table (cache.py).

In front of the table it is driven through ResponseCache over a small fake DynamoDB client that counts its
calls, so each test says exactly when the table is asked and what memory may serve without it.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import pytest

from mistral_gateway.policies.cache import CachedAnswer, ResponseCache
from mistral_gateway.policies.recent import ENTRY_OVERHEAD_BYTES, RecentAnswers


def answer(text: str = "{}", *, fresh_for: int = 60, age: int = 0) -> CachedAnswer:
    now = int(time.time())
    return CachedAnswer(text.encode(), 1, 1, created_at=now - age, fresh_until=now - age + fresh_for)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """clock.advance(seconds): time.time moves on (as it does for the gateway's freshness checks)."""

    class Clock:
        offset = 0.0

        def advance(self, seconds: float) -> None:
            self.offset += seconds

    moved = Clock()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + moved.offset)
    return moved


# --- alone -----------------------------------------------------------------------------------------------------


def test_a_kept_answer_is_served_by_its_key_only() -> None:
    recent = RecentAnswers(1_000_000, 60)
    recent.put("caller:a|k", answer("a's"))
    assert recent.get("caller:a|k") is not None and recent.get("caller:a|k").body == b"a's"  # type: ignore[union-attr]
    assert recent.get("caller:b|k") is None


def test_an_answer_is_never_served_past_its_own_freshness(clock: Any) -> None:
    recent = RecentAnswers(1_000_000, 3_600)
    recent.put("k", answer(fresh_for=10))
    clock.advance(11)
    assert recent.get("k") is None and len(recent) == 0 and recent.size == 0


def test_an_answer_is_served_from_memory_for_answer_memory_seconds_at_most(clock: Any) -> None:
    recent = RecentAnswers(1_000_000, 5)
    recent.put("k", answer(fresh_for=3_600))
    clock.advance(4)
    assert recent.get("k") is not None
    clock.advance(2)
    assert recent.get("k") is None  # the table is asked again (it may have lost or replaced it)


def test_max_age_is_applied_as_on_a_table_hit() -> None:
    recent = RecentAnswers(1_000_000, 60)
    recent.put("k", answer(age=30, fresh_for=3_600))
    assert recent.get("k", max_age=10) is None  # too old for this caller: the table is asked
    assert recent.get("k", max_age=60) is not None
    assert recent.get("k") is not None  # and it was kept for callers who accept it


def test_expired_answers_are_not_kept() -> None:
    recent = RecentAnswers(1_000_000, 60)
    recent.put("k", answer(fresh_for=0))
    assert len(recent) == 0


def test_it_holds_at_most_its_bytes_least_recently_used_out() -> None:
    one = len("k0") + 1_000 + ENTRY_OVERHEAD_BYTES
    recent = RecentAnswers(one * 4, 60)
    for index in range(4):
        recent.put(f"k{index}", answer("x" * 1_000))
    recent.get("k0")  # used: the oldest unused one goes first
    recent.put("k4", answer("x" * 1_000))
    assert recent.size <= recent.max_bytes and len(recent) == 4
    assert recent.get("k1") is None and recent.get("k0") is not None and recent.get("k4") is not None


def test_a_large_answer_is_not_kept_and_does_not_push_others_out() -> None:
    recent = RecentAnswers(10_000, 60)
    recent.put("small", answer("x"))
    recent.put("large", answer("x" * 5_000))
    assert recent.get("large") is None and recent.get("small") is not None


@pytest.mark.parametrize(("max_bytes", "max_seconds"), [(0, 60), (1_000_000, 0)])
def test_sized_zero_it_keeps_nothing(max_bytes: int, max_seconds: int) -> None:
    recent = RecentAnswers(max_bytes, max_seconds)
    recent.put("k", answer())
    assert recent.get("k") is None and len(recent) == 0


# --- in front of the table -------------------------------------------------------------------------------------


@dataclass
class FakeDynamoDB:
    """GetItem and PutItem over a dict, counting calls; `failing` makes every call raise."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    failing: bool = False

    def get_item(self, *, Key: dict[str, Any], **_: Any) -> dict[str, Any]:
        self._call("GetItem")
        item = self.items.get(Key["pk"]["S"])
        return {"Item": item} if item else {}

    def put_item(self, *, Item: dict[str, Any], **_: Any) -> dict[str, Any]:
        self._call("PutItem")
        self.items[Item["pk"]["S"]] = Item
        return {}

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.failing:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, name)


def cache(table: FakeDynamoDB, *, seconds: int = 60) -> ResponseCache:
    return ResponseCache("t", table, 3_600, RecentAnswers(1_000_000, seconds))


def item(key: str, text: str, *, fresh_for: int) -> dict[str, Any]:
    now = int(time.time())
    return {
        "pk": {"S": key},
        "body": {"B": zlib.compress(text.encode())},
        "created_at": {"N": str(now)},
        "fresh_until": {"N": str(now + fresh_for)},
        "expires_at": {"N": str(now + fresh_for + 3_600)},
    }


def test_a_stored_answer_is_then_served_without_asking_the_table() -> None:
    table = FakeDynamoDB()
    answers = cache(table)
    assert answers.put("caller:a|k", b"a's answer", ttl_seconds=60, prompt_tokens=3, completion_tokens=4)
    found = answers.remembered("caller:a|k", None)
    assert found is not None and (found.body, found.prompt_tokens, found.completion_tokens) == (b"a's answer", 3, 4)
    assert table.calls == ["PutItem"]
    assert answers.remembered("caller:b|k", None) is None  # another scope's key: never from memory


def test_what_the_table_returns_fresh_is_remembered_and_nothing_else() -> None:
    table = FakeDynamoDB(
        items={"fresh": item("fresh", "f", fresh_for=60), "expired": item("expired", "e", fresh_for=-5)}
    )
    answers = cache(table)
    assert answers.read("fresh") is not None and answers.read("expired") is not None
    assert answers.remembered("fresh", None) is not None
    assert answers.remembered("expired", None) is None  # stale-if-error reads the table, as before


def test_a_store_the_table_refused_is_not_served_from_memory() -> None:
    table = FakeDynamoDB(failing=True)
    answers = cache(table)
    assert not answers.put("k", b"x", ttl_seconds=60, prompt_tokens=1, completion_tokens=1)
    assert answers.remembered("k", None) is None


def test_an_answer_the_table_no_longer_holds_is_forgotten_on_the_next_read() -> None:
    table = FakeDynamoDB(items={"k": item("k", "old", fresh_for=600)})
    answers = cache(table, seconds=5)
    answers.read("k")
    del table.items["k"]  # deleted by hand
    assert answers.remembered("k", None) is not None  # within ANSWER_MEMORY_SECONDS: the documented window
    assert answers.read("k") is None and answers.remembered("k", None) is None


def test_a_stored_answers_max_age_ttl_bounds_it_in_memory_too(clock: Any) -> None:
    table = FakeDynamoDB()
    answers = cache(table, seconds=3_600)
    answers.put("k", b"x", ttl_seconds=5, prompt_tokens=1, completion_tokens=1)  # a caller's max-age=5
    clock.advance(6)
    assert answers.remembered("k", None) is None
