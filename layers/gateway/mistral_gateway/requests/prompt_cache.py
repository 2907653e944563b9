"""`prompt_cache_key`, namespaced per caller before it reaches Mistral.

Mistral keeps a prompt cache per account: requests that share a `prompt_cache_key` may reuse each other's
cached prompt prefix (and are billed 10 % for those tokens). Every caller of this gateway shares its one Mistral
account, so two tenants sending the same key (or none) would share that cache, and the time to the first token
would tell one tenant what another has just sent (a timing side channel).

So the gateway replaces the key with `gw-` + HMAC-SHA256(caller id, key) (hex, 40 characters), on every route
that takes one (chat, FIM, responses, agents completions), and sets one (the HMAC of the empty key) when the
caller sent none, so that even callers without a key never share. The caller's own grouping still works: the
same caller and key always give the same namespaced key, different keys give different ones. The caller's key
itself never reaches Mistral.

The answer cache ignores `prompt_cache_key` (canonical.py): it groups prompts for Mistral's prefix cache and
never changes an answer, and the answer cache is already scoped per caller (CACHE_SCOPE).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

FIELD = "prompt_cache_key"
PREFIX = "gw-"
ANONYMOUS = "anonymous"  # a request without a caller id (the tests' and sam local's unauthenticated events)


def namespaced_key(caller: str | None, key: str | None) -> str:
    """The key Mistral sees for `caller`'s `key` (None or "" when the caller sent none)."""
    digest = hmac.new((caller or ANONYMOUS).encode(), (key or "").encode(), hashlib.sha256).hexdigest()
    return PREFIX + digest[:40]


def namespaced(arguments: dict[str, Any], caller: str | None) -> dict[str, Any]:
    """The request's arguments with its `prompt_cache_key` replaced by the caller's namespaced one. A key that
    is not a string (already refused by validation where a route validates) is left for Mistral to refuse."""
    key = arguments.get(FIELD)
    if key is not None and not isinstance(key, str):
        return arguments
    return {**arguments, FIELD: namespaced_key(caller, key)}


# Pass-through routes whose JSON body takes a `prompt_cache_key` (the other routes with one have handlers).
PASSTHROUGH_ROUTES = frozenset({"agents/completions"})


def namespaced_body(subpath: str, raw: bytes | None, caller: str | None) -> bytes | None:
    """A pass-through body with its key namespaced, on the routes that take one; any other body untouched."""
    if subpath.strip("/") not in PASSTHROUGH_ROUTES or not raw:
        return raw
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw  # Mistral refuses it
    if not isinstance(body, dict):
        return raw
    return json.dumps(namespaced(body, caller), ensure_ascii=False).encode()
