"""API Gateway REQUEST authorizer: takes the caller key from `Authorization: Bearer <key>`, or from `x-api-key`
when no Authorization header is sent at all.

One rule, and the cache is keyed on exactly what it reads: API Gateway caches this authorizer's decision by
its identity source, the Authorization header (template.yaml). Whenever that header is present it is the
only thing read, so two requests with the same Authorization always get the same decision and no alias can
form (a junk `Authorization` beside someone's `x-api-key` is refused, never cached as theirs). With caching
on, API Gateway refuses a request without Authorization (401) before calling this function, so `x-api-key`
alone only works with AuthorizerCacheSeconds=0 (README, docs/reliability.md).

The key goes to API Gateway (`usageIdentifierKey`, with the API's ApiKeySourceType AUTHORIZER), which checks
it against the usage plan (unknown key -> 401 via the INVALID_API_KEY gateway response, throttle/quota ->
429) before any function work. It never logs the key and imports nothing heavy.
"""

from __future__ import annotations

import hashlib
from typing import Any

BEARER = "bearer "


class Unauthorized(Exception):
    """Raising exactly 'Unauthorized' makes API Gateway answer 401 (as our Mistral-style JSON)."""


def presented_key(headers: dict[str, str] | None) -> str | None:
    """The caller key under the one rule: Authorization when sent (and then nothing else), else x-api-key."""
    lowered = {name.lower(): value for name, value in (headers or {}).items() if isinstance(value, str)}
    authorization = lowered.get("authorization", "").strip()
    if authorization:
        key = authorization[len(BEARER) :].strip() if authorization[: len(BEARER)].lower() == BEARER else ""
    else:
        key = lowered.get("x-api-key", "").strip()
    return key or None


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    key = presented_key(event.get("headers"))
    if key is None:
        raise Unauthorized("Unauthorized")
    # arn:aws:execute-api:region:account:api-id/stage/METHOD/path -> allow every route of this stage, so one
    # cached decision serves all of the caller's requests.
    arn_parts = event["methodArn"].split("/")
    resource = "/".join(arn_parts[:2]) + "/*/*"
    return {
        # A stable, non-reversible id of the key: it scopes the caller's cache entries and appears in logs.
        "principalId": "key-" + hashlib.sha256(key.encode()).hexdigest()[:20],
        "usageIdentifierKey": key,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resource}],
        },
    }
