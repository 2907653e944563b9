"""The answer cache: one DynamoDB item per cache key, holding the complete answer, compressed.

The cache fails open: any DynamoDB error is logged, counted and treated as a miss (or a skipped store),
never as a failed request. DynamoDB deletes expired items lazily (moto never does), so expiry is checked
on every read.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

from mistral_gateway import aws, observability
from mistral_gateway.observability import logger

# DynamoDB's item limit is 400 KB including attribute names; leave room for the other attributes.
MAX_STORED_BYTES = 380_000


@dataclass(frozen=True)
class CachedAnswer:
    body: bytes  # the answer's JSON exactly as it was first served
    prompt_tokens: int
    completion_tokens: int
    created_at: int
    expires_at: int

    def is_fresh(self, now: float) -> bool:
        return self.expires_at > now


@dataclass
class ResponseCache:
    table_name: str

    def get(self, key: str) -> CachedAnswer | None:
        """The stored answer for `key` (fresh or not), or None when absent or unreadable."""
        try:
            with observability.traced("cache.get", lazy=True):
                item = aws.client("dynamodb").get_item(TableName=self.table_name, Key={"pk": {"S": key}}).get("Item")
        except Exception as error:  # fail open: a sick cache must not fail the request
            self._failed("get", error)
            return None
        if not item:
            return None
        try:
            return CachedAnswer(
                body=zlib.decompress(item["body"]["B"]),
                prompt_tokens=int(item.get("prompt_tokens", {}).get("N", 0)),
                completion_tokens=int(item.get("completion_tokens", {}).get("N", 0)),
                created_at=int(item["created_at"]["N"]),
                expires_at=int(item["expires_at"]["N"]),
            )
        except (KeyError, ValueError, zlib.error) as error:
            self._failed("decode", error)
            return None

    def put(self, key: str, body: bytes, *, ttl_seconds: int, prompt_tokens: int, completion_tokens: int) -> bool:
        """Store a complete, successful answer. Returns whether it was stored."""
        compressed = zlib.compress(body, 6)
        if len(compressed) > MAX_STORED_BYTES:
            logger.warning("answer too large to cache", extra={"compressed_bytes": len(compressed)})
            observability.count(observability.CACHE_STORE_SKIPPED)
            return False
        now = int(time.time())
        item = {
            "pk": {"S": key},
            "body": {"B": compressed},
            "prompt_tokens": {"N": str(prompt_tokens)},
            "completion_tokens": {"N": str(completion_tokens)},
            "created_at": {"N": str(now)},
            "expires_at": {"N": str(now + ttl_seconds)},
        }
        try:
            with observability.traced("cache.put", lazy=True):
                aws.client("dynamodb").put_item(TableName=self.table_name, Item=item)
        except Exception as error:  # fail open
            self._failed("put", error)
            return False
        return True

    @staticmethod
    def _failed(operation: str, error: Exception) -> None:
        code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
        logger.warning("cache unavailable, failing open", extra={"operation": operation, "error_code": code})
        observability.count(observability.CACHE_ERROR)
