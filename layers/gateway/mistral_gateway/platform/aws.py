"""What the gateway reads of AWS's errors. The clients themselves are the container's (container.py)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from typing import Any

BATCH_GET_KEYS = 100  # the most keys one BatchGetItem may ask for
UNPROCESSED_BACKOFF_S = 0.05  # the pause before keys DynamoDB left unprocessed are asked again (jittered)


class Unprocessed(Exception):
    """Keys DynamoDB still left unprocessed (throttling) after every attempt."""


def batch_get(
    call: Callable[..., Any],
    table: str,
    pks: Iterable[str],
    *,
    attempts: int,
    sleep: Callable[[float], None] = time.sleep,
    **read: Any,
) -> dict[str, dict[str, Any]]:
    """{pk: item} for every item of `table` (keyed on `pk`) among `pks` (repeats asked once), through `call` (a
    client's batch_get_item, or a store's wrapper of it that turns AWS's errors into its own): BATCH_GET_KEYS
    keys a call, `read` (ConsistentRead, a projection...) on each. Keys left unprocessed are asked again after a
    short jittered pause, as DynamoDB asks, `attempts` calls a chunk at most; still unprocessed, `Unprocessed`:
    a missing item must not read as an absent one."""
    keys = [{"pk": {"S": pk}} for pk in dict.fromkeys(pks)]  # a repeated key is a ValidationException
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), BATCH_GET_KEYS):
        wanted = {table: {"Keys": keys[start : start + BATCH_GET_KEYS], **read}}
        for attempt in range(attempts):
            if attempt:
                sleep(UNPROCESSED_BACKOFF_S * random.uniform(0.5, 1.0))
            response = call(RequestItems=wanted)
            found |= {item["pk"]["S"]: item for item in response.get("Responses", {}).get(table, [])}
            wanted = response.get("UnprocessedKeys") or {}
            if not wanted:
                break
        else:
            raise Unprocessed()
    return found


def errors() -> tuple[type[Exception], ...]:
    """What a botocore client's call raises when AWS refuses or cannot be reached (for the fail-open sites). botocore is
    already loaded by then: this runs only in an `except` clause, after a client made a call."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def error_code(error: BaseException) -> str:
    """AWS's error code (`ThrottlingException`...) or, for network-level failures, the exception's name."""
    response = getattr(error, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return str(code) if code else type(error).__name__
