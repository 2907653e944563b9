"""Single-flight against an in-memory cache: lead, wait for the leader, or give the lease back."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.policies.cache import CachedAnswer, Claim, Entry, Lease
from mistral_gateway.policies.singleflight import Flight


def answer(text: str = "{}") -> CachedAnswer:
    now = int(time.time())
    return CachedAnswer(text.encode(), 1, 1, created_at=now, fresh_until=now + 60)


@dataclass
class FakeCache:
    """The three calls single-flight makes, over a dict; `arrivals` are entries later reads will find."""

    entries: dict[str, Entry] = field(default_factory=dict)
    arrivals: list[Entry] = field(default_factory=list)
    released: list[Lease] = field(default_factory=list)

    def claim(self, key: str, *, lease_seconds: float) -> tuple[Lease | None, Entry | None]:
        entry = self.entries.get(key)
        if entry is not None and (entry.leased(time.time()) or entry.answer is not None):
            return None, entry
        self.entries[key] = Entry(None, time.time() + lease_seconds)
        return Lease(key, "me"), None

    def read(self, key: str, *, consistent: bool = False) -> Entry | None:
        if self.arrivals:
            self.entries[key] = self.arrivals.pop(0)
        return self.entries.get(key)

    def release(self, lease: Lease) -> None:
        self.released.append(lease)


def flight(cache: FakeCache, entry: Entry | None = None, *, enabled: bool = True) -> Flight:
    return Flight(cache, "k", entry, None, Deadline.start(5_000), wait_ms=8_000, enabled=enabled)  # type: ignore[arg-type]


def test_the_first_miss_leads_and_gives_the_lease_back_when_nothing_was_stored() -> None:
    cache = FakeCache()
    with flight(cache) as lead:
        assert lead.lease == Lease("k", "me") and lead.answer is None
    assert cache.released == [Lease("k", "me")]


def test_a_leader_leaves_its_lease_to_the_store_which_may_run_after_the_block() -> None:
    cache, stores = FakeCache(), []
    with flight(cache) as lead:
        settle = lead.settled_by(lambda: stores.append("stored") or True)
    assert cache.released == [] and stores == []  # the lease is the store's: waiters keep waiting for the answer
    settle()  # the store landed (a PutItem ends the lease)
    assert cache.released == [] and stores == ["stored"]


def test_a_store_that_raises_still_gives_the_lease_back() -> None:
    cache = FakeCache()
    with flight(cache) as lead:
        settle = lead.settled_by(lambda: 1 / 0 == 0)
    with pytest.raises(ZeroDivisionError):
        settle()
    assert cache.released == [Lease("k", "me")]


def test_a_store_that_does_not_land_gives_the_lease_back() -> None:
    cache = FakeCache()
    with flight(cache) as lead:
        settle = lead.settled_by(lambda: False)
    assert cache.released == []
    settle()
    assert cache.released == [Lease("k", "me")]  # waiters stop waiting and ask Mistral themselves


def test_a_follower_waits_for_the_leaders_answer() -> None:
    leased = Entry(None, time.time() + 30)
    cache = FakeCache(entries={"k": leased}, arrivals=[leased, Entry(answer("leader's"), 0.0)])
    with flight(cache, leased) as follower:
        assert follower.lease is None and follower.answer is not None
        assert follower.answer.body == b"leader's"
    assert cache.released == []


def test_a_follower_stops_waiting_when_the_leader_gives_up() -> None:
    leased = Entry(None, time.time() + 30)
    cache = FakeCache(entries={"k": leased}, arrivals=[Entry(None, 0.0)])
    with flight(cache, leased) as follower:
        assert follower.lease is None and follower.answer is None  # ask Mistral itself, at once


def test_disabled_single_flight_does_nothing() -> None:
    cache = FakeCache()
    with flight(cache, enabled=False) as off:
        assert off.lease is None and off.answer is None
    assert cache.entries == {} and cache.released == []


# --- the lookup already tried to take the lease (cache.lead_or_find: one round trip) ----------------------------


def claimed(cache: FakeCache, claim: Claim) -> Flight:
    return Flight(cache, "k", claim.entry, None, Deadline.start(5_000), wait_ms=8_000, claim=claim)  # type: ignore[arg-type]


def test_a_lookup_that_took_the_lease_leads_without_claiming_again() -> None:
    cache = FakeCache(entries={"k": Entry(None, time.time() + 30)})  # a second claim would be refused
    with claimed(cache, Claim(Lease("k", "mine"), None)) as lead:
        assert lead.lease == Lease("k", "mine") and lead.answer is None
        lead.settled_by(lambda: True)()
    assert cache.released == []


def test_a_lookup_refused_by_a_live_lease_waits_for_the_leader() -> None:
    leased = Entry(None, time.time() + 30)
    cache = FakeCache(entries={"k": leased}, arrivals=[leased, Entry(answer("leader's"), 0.0)])
    with claimed(cache, Claim(None, leased)) as follower:
        assert follower.lease is None and follower.answer is not None and follower.answer.body == b"leader's"


def test_a_lookup_the_cache_failed_asks_mistral_without_a_lease_or_another_call() -> None:
    cache = FakeCache()
    with claimed(cache, Claim(None, None, failed=True)) as alone:
        assert alone.lease is None and alone.answer is None
    assert cache.entries == {} and cache.released == []


def test_a_lookup_refused_by_an_answer_too_old_for_the_caller_asks_mistral_itself() -> None:
    old = CachedAnswer(b"old", 1, 1, created_at=int(time.time()) - 100, fresh_until=int(time.time()) + 60)
    cache = FakeCache()
    flight = Flight(cache, "k", Entry(old), 10, Deadline.start(5_000), wait_ms=8_000, claim=Claim(None, Entry(old)))  # type: ignore[arg-type]
    with flight as alone:
        assert alone.lease is None and alone.answer is None
