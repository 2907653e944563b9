"""Recent answers kept in the container, in front of the DynamoDB answer cache (cache.py).

A hot prompt is then served from memory: no DynamoDB round trip on the hit, and under `CacheScope=shared` a
hot key stops being a hot partition. It only ever holds what the table held a moment ago:

- an answer enters it only after the table returned it fresh (a read) or accepted it (a store), under the
  same key, and the key already names the caller's scope (canonical.cache_key), so one caller never finds
  another's answer here unless the table would have given it too;
- it serves an answer only while that answer is fresh by its own `fresh_until` (the entry's TTL, which a
  caller's `max-age` may have shortened when it was stored) and, at most, `ANSWER_MEMORY_SECONDS` after it
  was taken from the table: an answer the table has since lost (deleted by hand, replaced by another
  container's `no-cache` refresh) is served from here for that long at most, never past its own freshness;
- the caller's Cache-Control is applied by flow/answers.py exactly as on a table hit: `no-cache` and `no-store`
  skip the lookup (and so this cache), an answer older than `max-age` is looked up in the table instead;
- expired answers are never kept (stale-if-error reads the table, as before);
- it is bounded in bytes (`ANSWER_MEMORY_BYTES`, 0 turns it off), least recently used first out.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Generic, Protocol, TypeVar


class Kept(Protocol):
    """What this cache needs of an answer (cache.CachedAnswer is one); the cache module builds this one, so
    this module does not import it back."""

    @property
    def body(self) -> bytes: ...

    @property
    def events(self) -> bytes | None: ...

    def is_fresh(self, now: float) -> bool: ...

    def usable(self, now: float, max_age: int | None) -> bool: ...


CachedAnswer = TypeVar("CachedAnswer", bound=Kept)

# What one kept entry costs beyond its bytes (the key, the objects and the dictionary slot), roughly.
ENTRY_OVERHEAD_BYTES = 400


def footprint(key: str, answer: Kept) -> int:
    return len(key) + len(answer.body) + len(answer.events or b"") + ENTRY_OVERHEAD_BYTES


class RecentAnswers(Generic[CachedAnswer]):
    """A byte-bounded LRU of fresh answers by cache key. Thread-safe (a batch's items run in threads)."""

    def __init__(self, max_bytes: int, max_seconds: float) -> None:
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.size = 0  # bytes held, as `footprint` counts them
        self._entries: OrderedDict[str, tuple[CachedAnswer, float, int]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0 and self.max_seconds > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, max_age: int | None = None) -> CachedAnswer | None:
        """The answer kept under `key` if it is fresh, was taken from the table recently enough and is no
        older than `max_age` (when the caller sent one); else None, and the table is asked."""
        if not self._entries:
            return None
        now = time.time()  # looked up on each call, so a test that moves the clock moves this cache too
        with self._lock:
            kept = self._entries.get(key)
            if kept is None:
                return None
            answer, until, size = kept
            if not answer.is_fresh(now) or now >= until:
                del self._entries[key]
                self.size -= size
                return None
            self._entries.move_to_end(key)
        return answer if answer.usable(now, max_age) else None

    def put(self, key: str, answer: CachedAnswer) -> None:
        """Keep an answer the table just returned or accepted (only while fresh; too large ones are not kept)."""
        if not self.enabled:
            return
        now = time.time()
        if not answer.is_fresh(now):
            self.forget(key)
            return
        size = footprint(key, answer)
        with self._lock:
            self._drop(key)
            if size > self.max_bytes // 4:  # one large answer must not push out many small ones
                return
            self._entries[key] = (answer, now + self.max_seconds, size)
            self.size += size
            while self.size > self.max_bytes:
                _, (_, _, dropped) = self._entries.popitem(last=False)
                self.size -= dropped

    def forget(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: str) -> None:
        kept = self._entries.pop(key, None)
        if kept is not None:
            self.size -= kept[2]
