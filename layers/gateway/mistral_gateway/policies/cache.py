"""The answer cache: one DynamoDB item per cache key, holding the complete answer, compressed.

An item may also carry an in-flight lease (`lease_until`, `lease_owner`): the single-flight marker that
tells identical concurrent requests that one of them is already asking Mistral. The lease lives on the
entry itself, so claiming it keeps an expired answer in place (for stale-if-error), and the leader's final
PutItem replaces the whole item, which ends the lease without another call. A miss that will be stored looks
up with the claim itself (`lead_or_find`: one UpdateItem that returns the item either way).

Recent fresh answers are also kept in the container's memory in front of the table (recent.py): a repeated
hit then makes no DynamoDB call at all.

Freshness and deletion are separate: an answer is fresh until `fresh_until`; DynamoDB's TTL attribute
`expires_at` is later by the stale-if-error window, so an expired answer can still be served when Mistral
fails. DynamoDB deletes lazily (moto never does), so freshness is checked on every read.

The cache fails open: any DynamoDB error is logged, counted and treated as a miss (or a skipped store),
never as a failed request.
"""

from __future__ import annotations

import secrets
import time
import zlib
from dataclasses import dataclass
from typing import Any

from mistral_gateway.platform import aws, observability
from mistral_gateway.platform.observability import logger
from mistral_gateway.policies.recent import RecentAnswers

# DynamoDB's item limit is 400 KB including attribute names; leave room for the other attributes.
MAX_STORED_BYTES = 380_000


class Compressed(bytes):
    """Bytes already zlib-compressed (a live stream compresses its events as they pass): stored as they are."""


@dataclass(frozen=True)
class CachedAnswer:
    body: bytes  # the answer's JSON exactly as it was first served
    prompt_tokens: int
    completion_tokens: int
    created_at: int
    fresh_until: int
    # A streamed answer also keeps Mistral's original SSE events, replayed as they were (None: stored plain).
    events: bytes | None = None

    def is_fresh(self, now: float) -> bool:
        return self.fresh_until > now

    def usable(self, now: float, max_age: int | None) -> bool:
        """Fresh, and no older than the caller's `max-age` (when it sent one)."""
        return self.is_fresh(now) and (max_age is None or now - self.created_at <= max_age)


@dataclass(frozen=True)
class Entry:
    """What one read found under a key: maybe an answer (fresh or not), maybe a live lease."""

    answer: CachedAnswer | None
    lease_until: float = 0.0

    def leased(self, now: float) -> bool:
        return self.lease_until > now


@dataclass(frozen=True)
class Lease:
    key: str
    owner: str
    bare: bool = False  # the claim created the item (no answer was stored): giving the lease up deletes it


@dataclass(frozen=True)
class Claim:
    """What one lookup-and-lease (`lead_or_find`) found: the lease when this caller leads (`entry` is then
    what the item held before, maybe an expired answer for stale-if-error), else the entry that blocked it
    (a fresh answer or another caller's live lease); `failed` when DynamoDB did not answer (fail open)."""

    lease: Lease | None
    entry: Entry | None
    failed: bool = False


@dataclass
class ResponseCache:
    table_name: str
    dynamodb: Any  # a botocore DynamoDB client (the container's)
    stale_if_error_seconds: int  # how long an expired answer is kept for stale-if-error
    # Recent fresh answers kept in the container (recent.py); off when None or sized 0.
    recent: RecentAnswers[CachedAnswer] | None = None

    def remembered(self, key: str, max_age: int | None) -> CachedAnswer | None:
        """A fresh answer for `key` from the container's memory (no DynamoDB call), or None: ask the table."""
        return self.recent.get(key, max_age) if self.recent is not None else None

    def read(self, key: str, *, consistent: bool = False) -> Entry | None:
        """The whole entry (answer and lease), or None when absent or unreadable."""
        try:
            with observability.traced("cache.get", lazy=True):
                item = self.dynamodb.get_item(
                    TableName=self.table_name, Key={"pk": {"S": key}}, ConsistentRead=consistent
                ).get("Item")
        except aws.errors() as error:  # fail open: a sick cache must not fail the request
            self._failed("get", error)
            return None
        return self._seen(key, item)

    def put(
        self,
        key: str,
        body: bytes,
        *,
        ttl_seconds: int,
        prompt_tokens: int,
        completion_tokens: int,
        events: bytes | None = None,
    ) -> bool:
        """Store a complete, successful answer (ending any lease on the key). Returns whether it was stored."""
        compressed = zlib.compress(body, 6)
        compressed_events = _compressed(events)
        if len(compressed) + len(compressed_events or b"") > MAX_STORED_BYTES:
            logger.warning("answer too large to cache", extra={"compressed_bytes": len(compressed)})
            observability.count(observability.CACHE_STORE_SKIPPED)
            return False
        now = int(time.time())
        item: dict[str, Any] = {
            "pk": {"S": key},
            "body": {"B": compressed},
            "prompt_tokens": {"N": str(prompt_tokens)},
            "completion_tokens": {"N": str(completion_tokens)},
            "created_at": {"N": str(now)},
            "fresh_until": {"N": str(now + ttl_seconds)},
            "expires_at": {"N": str(now + ttl_seconds + self.stale_if_error_seconds)},
        }
        if compressed_events is not None:
            item["events"] = {"B": compressed_events}
        try:
            with observability.traced("cache.put", lazy=True):
                self.dynamodb.put_item(TableName=self.table_name, Item=item)
        except aws.errors() as error:  # fail open
            self._failed("put", error)
            self._remember(key, None)
            return False
        # What a table read would give back: a live stream's events arrive here already compressed.
        plain_events = zlib.decompress(events) if isinstance(events, Compressed) else events
        stored = CachedAnswer(body, prompt_tokens, completion_tokens, now, now + ttl_seconds, plain_events)
        self._remember(key, Entry(stored))  # only once the table holds it
        return True

    def claim(self, key: str, *, lease_seconds: float) -> tuple[Lease | None, Entry | None]:
        """Try to become the one caller that asks Mistral for `key`.

        Succeeds (returns a Lease) unless the entry holds a fresh answer or another live lease; then it
        returns what blocked it, so the caller can serve the answer or wait. A failing cache returns
        (None, None): the caller goes to Mistral on its own, as without single-flight.
        """
        claim = self.lead_or_find(key, lease_seconds=lease_seconds)
        return claim.lease, None if claim.lease is not None else claim.entry

    def lead_or_find(self, key: str, *, lease_seconds: float) -> Claim:
        """The lookup and the single-flight lease in one round trip: one conditional UpdateItem that sets the
        lease only if the item holds no fresh answer and no live lease. Either way the item comes back
        (ALL_OLD on success, ReturnValuesOnConditionCheckFailure=ALL_OLD on refusal), so a hit is served
        from what refused the lease, and a leader still has the expired answer for stale-if-error."""
        now = time.time()
        owner = secrets.token_hex(8)
        lease_until = now + lease_seconds
        try:
            with observability.traced("cache.lead_or_find", lazy=True):
                response = self.dynamodb.update_item(
                    TableName=self.table_name,
                    Key={"pk": {"S": key}},
                    UpdateExpression="SET lease_until = :until, lease_owner = :owner, "
                    "expires_at = if_not_exists(expires_at, :until_int)",
                    ConditionExpression="(attribute_not_exists(lease_until) OR lease_until < :now) "
                    "AND (attribute_not_exists(fresh_until) OR fresh_until <= :now)",
                    ExpressionAttributeValues={
                        ":until": {"N": f"{lease_until:.3f}"},
                        ":until_int": {"N": str(int(lease_until) + 60)},  # a dead leader's marker is cleaned up
                        ":owner": {"S": owner},
                        ":now": {"N": f"{now:.3f}"},
                    },
                    ReturnValues="ALL_OLD",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except aws.errors() as error:
            if aws.error_code(error) == "ConditionalCheckFailedException":
                item = getattr(error, "response", {}).get("Item")
                if item and item.get("lease_owner", {}).get("S") == owner:
                    # Our own lease: botocore retried a call whose first attempt landed but whose answer was
                    # lost (a read timeout under load). Waiting on it would wait on ourselves.
                    return Claim(Lease(key, owner, bare="body" not in item), self._seen(key, item))
                return Claim(None, self._seen(key, item) if item else self.read(key, consistent=True))
            self._failed("claim", error)
            return Claim(None, None, failed=True)
        previous = self._seen(key, response.get("Attributes"))
        bare = "body" not in (response.get("Attributes") or {})  # no answer there: the item is only this lease
        return Claim(Lease(key, owner, bare=bare), previous)

    def release(self, lease: Lease) -> None:
        """Give up a lease without storing an answer (the call failed, or the request was refused after the
        lookup), so waiters stop waiting. An item the claim created is deleted: a refused request leaves the
        table as it found it."""
        try:
            if lease.bare:
                self.dynamodb.delete_item(
                    TableName=self.table_name,
                    Key={"pk": {"S": lease.key}},
                    ConditionExpression="lease_owner = :owner AND attribute_not_exists(body)",
                    ExpressionAttributeValues={":owner": {"S": lease.owner}},
                )
                return
            self.dynamodb.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": lease.key}},
                UpdateExpression="REMOVE lease_until, lease_owner",
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": {"S": lease.owner}},
            )
        except aws.errors() as error:
            if aws.error_code(error) != "ConditionalCheckFailedException":  # someone else's lease now: fine
                self._failed("release", error)

    def _seen(self, key: str, item: dict[str, Any] | None) -> Entry | None:
        """The entry the table returned for `key` (None: no item), remembered in memory when fresh."""
        entry = self._entry(item) if item else None
        self._remember(key, entry)
        return entry

    def _remember(self, key: str, entry: Entry | None) -> None:
        """Memory follows the table: what it holds fresh is kept, anything else is forgotten."""
        if self.recent is None:
            return
        if entry is not None and entry.answer is not None and entry.answer.is_fresh(time.time()):
            self.recent.put(key, entry.answer)
        else:
            self.recent.forget(key)

    def _entry(self, item: dict[str, Any]) -> Entry | None:
        lease_until = float(item.get("lease_until", {}).get("N", 0))
        if "body" not in item:  # only a lease so far
            return Entry(None, lease_until)
        try:
            created_at = int(item["created_at"]["N"])
            answer = CachedAnswer(
                body=zlib.decompress(item["body"]["B"]),
                prompt_tokens=int(item.get("prompt_tokens", {}).get("N", 0)),
                completion_tokens=int(item.get("completion_tokens", {}).get("N", 0)),
                created_at=created_at,
                # Items written before fresh_until existed were fresh until their deletion time.
                fresh_until=int(item.get("fresh_until", item.get("expires_at", {"N": created_at}))["N"]),
                events=zlib.decompress(item["events"]["B"]) if "events" in item else None,
            )
        except (KeyError, ValueError, TypeError, zlib.error) as error:
            self._failed("decode", error)
            return None
        return Entry(answer, lease_until)

    @staticmethod
    def _failed(operation: str, error: Exception) -> None:
        logger.warning(
            "cache unavailable, failing open", extra={"operation": operation, "error_code": aws.error_code(error)}
        )
        observability.count(observability.CACHE_ERROR)


def _compressed(data: bytes | None) -> bytes | None:
    if data is None:
        return None
    return bytes(data) if isinstance(data, Compressed) else zlib.compress(data, 6)
