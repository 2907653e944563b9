"""Two caller keys of a gateway over HTTP, each with its own mistralai SDK client (the SDK-level ownership tests)."""

from __future__ import annotations

from typing import Any

import pytest
from mistralai.client import Mistral
from mistralai.client.errors import SDKError

KEYS = {"key-a-0123456789": "key-a", "key-b-0123456789": "key-b"}


def two_callers(url: str) -> tuple[Mistral, Mistral]:
    """alice and bob: one SDK client per caller key."""
    alice, bob = (Mistral(api_key=key, server_url=url) for key in KEYS)
    return alice, bob


def status_of(call: Any) -> int:
    """The HTTP status the SDK raised for `call()` (which must fail)."""
    with pytest.raises(SDKError) as refused:
        call()
    return int(refused.value.status_code)
