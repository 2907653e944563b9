"""Single-flight: identical concurrent misses make one upstream call, whichever container they land in.

The first miss claims a lease on the cache entry (cache.py; the lookup itself is that claim, one UpdateItem, so a
miss makes one DynamoDB round trip before Mistral) and asks Mistral; identical requests that find
the lease poll the entry for the leader's answer for a bounded time, then ask Mistral themselves. A leader
that fails stores nothing and gives the lease up, so waiters stop waiting at once.

Streams do not take part: a streamed request never waits for another caller's answer (its first token would
wait for the leader's last) and takes no lease (no plain request waits for a stream). See docs/streaming.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mistral_gateway.platform import observability
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.observability import logger
from mistral_gateway.policies.cache import CachedAnswer, Claim, Entry, Lease, ResponseCache


class Flight:
    """A `with` block around a miss. On entry it either leads (holds the lease) or finds the answer another
    caller fetched (`answer`). A leader with an answer to keep hands the lease to `settled_by`'s work (the
    store); on exit any other lease is given up."""

    def __init__(
        self,
        cache: ResponseCache,
        key: str,
        entry: Entry | None,
        max_age: int | None,
        deadline: Deadline,
        *,
        wait_ms: int,
        enabled: bool = True,
        claim: Claim | None = None,
    ) -> None:
        self.enabled = enabled and wait_ms > 0  # off: a miss that will not be stored, or SINGLE_FLIGHT_WAIT_MS=0
        self.wait_ms = wait_ms  # how long a follower waits for the leader's answer at most
        self.cache = cache
        self.key = key
        self.entry = entry
        self.max_age = max_age
        self.deadline = deadline
        self.lease: Lease | None = None
        self.answer: CachedAnswer | None = None
        self.claim = claim  # the lookup already tried to take the lease (cache.lead_or_find): not again
        self._settled_elsewhere = False  # `settled_by` handed the lease to the store, which may run later

    def __enter__(self) -> Flight:
        if self.enabled:
            self.lease, self.answer = self._claim_or_wait()
        return self

    def settled_by(self, store: Callable[[], bool]) -> Callable[[], None]:
        """The work that ends this flight, to run when it suits the caller (after the response): `store()`,
        which ends the lease when it lands, else the lease given up. From here the block's exit leaves the
        lease to that work, so waiters keep waiting for the answer until it is stored."""
        self._settled_elsewhere = True
        lease = self.lease

        def settle() -> None:
            stored = False
            try:
                stored = store()
            finally:
                if not stored and lease is not None:
                    self.cache.release(lease)  # nothing stored: waiters stop waiting and ask Mistral themselves

        return settle

    def __exit__(self, *_: object) -> None:
        if self.lease is not None and not self._settled_elsewhere:
            self.cache.release(self.lease)  # waiters stop waiting and ask Mistral themselves

    def _claim_or_wait(self) -> tuple[Lease | None, CachedAnswer | None]:
        """(lease, None) to lead; (None, answer) when another caller's answer is there; (None, None) to ask
        Mistral without a lease (the cache is failing, or the other caller gave up)."""
        blocked: Entry | None
        if self.claim is not None:  # the lookup was the claim (cache.lead_or_find): no second one
            if self.claim.lease is not None or self.claim.entry is None:
                return self.claim.lease, None  # lead, or (the cache failing) ask Mistral without a lease
            blocked = self.claim.entry
        else:
            blocked = self.entry
            if blocked is None or not blocked.leased(time.time()):
                lease, blocked = self.cache.claim(self.key, lease_seconds=self.deadline.remaining_ms() / 1000)
                if lease is not None or blocked is None:
                    return lease, None
        if blocked.answer is not None and blocked.answer.usable(time.time(), self.max_age):
            return None, blocked.answer  # it landed between our read and our claim
        if not blocked.leased(time.time()):
            return None, None
        return None, self._wait_for_leader()

    def _wait_for_leader(self) -> CachedAnswer | None:
        """Poll (consistent reads, backing off) for the leader's answer; None when it fails or takes too long."""
        wait_ms = min(self.wait_ms, self.deadline.remaining_ms() / 2)
        give_up = time.monotonic() + wait_ms / 1000
        pause = 0.02
        observability.count(observability.SINGLE_FLIGHT_WAITS)
        while time.monotonic() + pause < give_up:
            time.sleep(pause)
            pause = min(pause * 1.5, 0.25)
            entry = self.cache.read(self.key, consistent=True)
            if entry is None:
                return None
            if entry.answer is not None and entry.answer.usable(time.time(), self.max_age):
                observability.log_keys(single_flight="waited")
                return entry.answer
            if not entry.leased(time.time()):
                return None  # the leader failed (or stored nothing): ask Mistral ourselves
        logger.info("single-flight wait timed out; calling Mistral", extra={"waited_ms": round(wait_ms)})
        return None
