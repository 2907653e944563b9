"""API Gateway REQUEST authorizer: accepts the caller key as `Authorization: Bearer <key>` or `x-api-key`.

SDKs send Bearer; API Gateway's own API-key check only reads `x-api-key`. This authorizer hands the key to
API Gateway (`usageIdentifierKey`, with the API's ApiKeySourceType AUTHORIZER), which then checks it against
the usage plan (unknown key -> 403, throttle/quota -> 429) before any function work. It never logs the key
and imports nothing heavy, so it adds a few milliseconds at most (and its result is cached by API Gateway).
"""

from __future__ import annotations

import hashlib
from typing import Any


class Unauthorized(Exception):
    """Raising exactly 'Unauthorized' makes API Gateway answer 401 (as our Mistral-style JSON)."""


def presented_key(headers: dict[str, str] | None) -> str | None:
    lowered = {name.lower(): value for name, value in (headers or {}).items() if isinstance(value, str)}
    key = lowered.get("x-api-key", "").strip()
    authorization = lowered.get("authorization", "").strip()
    if not key and authorization[:7].lower() == "bearer ":
        key = authorization[7:].strip()
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
