"""Spend per key off the request path: "request served" lines, as CloudWatch Logs delivers them, added up.

The request functions write no spend themselves. Their `request served` line (durable in CloudWatch Logs) is the
record; a subscription filter on their log groups delivers the served lines to the spend function
(functions/spend/), which calls `apply` with the awslogs payload:

- decode it (base64, gzip, JSON), read each log event's message as the Powertools JSON line (or Lambda's JSON
  wrapping of it); a line that is not a served line of a caller key adds nothing (a malformed one is logged,
  never fatal: one bad line must not hold the batch's other lines back for ever);
- add the lines up per (key, day, model): the day is the log event's own timestamp (UTC), the counters are
  spend.rows (a batch request's items at their own models), so the sums are those of the lines;
- apply the sums exactly once: one TransactWriteItems per chunk of at most TRANSACTION_LIMIT - 1 sums, holding
  a Put of a marker item `spend-batch#<batch id>#<chunk>` conditioned on attribute_not_exists(pk), and the ADD
  updates. The batch id is a hash of the payload's log group, stream and every event id, so a redelivered
  batch (Lambda's async retry, a replay from the dead-letter queue) fails its markers' conditions and changes
  nothing; a chunk applied before a failure is not applied twice. Markers expire after MARKER_RETENTION_DAYS,
  longer than anything can redeliver a batch (the dead-letter queue keeps a message 14 days).

A chunk cancelled by another delivery's transaction on the same item (a hot key) is tried again at once, a
few times, with jitter. A chunk that fails otherwise (throttled, table missing) raises: the invocation fails,
Lambda retries it, then keeps it in the dead-letter queue (docs/reliability.md). Nothing is lost silently.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mistral_gateway.policies import spend

if TYPE_CHECKING:
    from mistral_gateway.platform.economics import Prices

SERVED = "request served"
MARKER_PREFIX = "spend-batch#"  # not "spend#": `keys usage` reads only spend# items
MARKER_RETENTION_DAYS = 15
# DynamoDB's TransactWriteItems holds at most 100 actions: one is the chunk's marker.
TRANSACTION_LIMIT = 100
CONFLICT_ATTEMPTS = 5  # a chunk cancelled by another delivery's transaction on the same item: tried again

Sums = dict[tuple[str, str, str], dict[str, int]]


@dataclass
class Batch:
    """One delivery: its identity, and its served lines' sums per (key, day, model)."""

    batch_id: str
    sums: Sums = field(default_factory=dict)
    lines: int = 0  # served lines of a caller key added
    skipped: int = 0  # malformed lines, logged and left out


def decode(event: dict[str, Any]) -> dict[str, Any]:
    """The awslogs payload of a subscription delivery: {"awslogs": {"data": base64(gzip(JSON))}}."""
    data = event["awslogs"]["data"]
    payload: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(data)))
    return payload


def encode(payload: dict[str, Any]) -> dict[str, Any]:
    """The event CloudWatch Logs sends a subscribed function (what decode reads)."""
    data = base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()
    return {"awslogs": {"data": data}}


def batch_id(payload: dict[str, Any]) -> str:
    ids = [str(event.get("id", "")) for event in payload.get("logEvents", [])]
    identity = json.dumps([payload.get("logGroup", ""), payload.get("logStream", ""), ids])
    return hashlib.sha256(identity.encode()).hexdigest()


def served_line(message: str) -> dict[str, Any] | None:
    """The served line a log event holds, None if it is another line. Raises ValueError when it is not JSON."""
    line = json.loads(message)
    if isinstance(line, dict) and isinstance(line.get("message"), dict):
        line = line["message"]  # Lambda's JSON log format wrapping a line (it leaves JSON lines as they are)
    if not isinstance(line, dict) or line.get("message") != SERVED:
        return None
    return line


def read(payload: dict[str, Any], prices: Prices, log: Any = None) -> Batch:
    """The payload's served lines of caller keys, added up per (key, day, model)."""
    batch = Batch(batch_id(payload))
    if payload.get("messageType") != "DATA_MESSAGE":
        return batch  # CloudWatch's CONTROL_MESSAGE checks the destination is reachable: nothing to add
    for event in payload.get("logEvents", []):
        try:
            line = served_line(str(event.get("message", "")))
            if line is None or not line.get("caller"):
                continue
            day = time.strftime("%Y-%m-%d", time.gmtime(int(event["timestamp"]) / 1000))
            added = spend.rows(line, prices)
        except (ValueError, TypeError, KeyError, OverflowError) as error:
            batch.skipped += 1
            if log is not None:
                log.warning(
                    "spend line skipped",
                    extra={"log_event_id": str(event.get("id", ""))[:80], "reason": type(error).__name__},
                )
            continue
        batch.lines += 1
        caller = str(line["caller"])[:200]
        for model, counts in added.items():
            mine = batch.sums.setdefault((caller, day, model), {})
            for name, value in counts.items():
                mine[name] = mine.get(name, 0) + value
    return batch


def chunks(batch: Batch) -> Iterator[list[tuple[tuple[str, str, str], dict[str, int]]]]:
    """The sums in a fixed order (a redelivery makes the same chunks, so the same markers)."""
    ordered = sorted(batch.sums.items())
    size = TRANSACTION_LIMIT - 1
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def update(table: str, caller: str, day: str, model: str, counts: dict[str, int], now: float) -> dict[str, Any]:
    """One ADD of a key's day and model (the item `keys usage` reads), as a transaction's Update."""
    names = {f"#c{n}": name for n, name in enumerate(counts)}
    values: dict[str, Any] = {f":c{n}": {"N": str(value)} for n, value in enumerate(counts.values())}
    values[":expires"] = {"N": str(int(now) + spend.SPEND_RETENTION_DAYS * 86_400)}
    values[":key"] = {"S": caller}
    values[":day"] = {"S": day}
    values[":model"] = {"S": model}
    adds = ", ".join(f"#c{n} :c{n}" for n in range(len(counts)))
    return {
        "TableName": table,
        "Key": {"pk": {"S": spend.item_key(caller, day, model)}},
        "UpdateExpression": f"ADD {adds} SET expires_at = :expires, key_id = :key, #day = :day, #model = :model",
        "ExpressionAttributeNames": {**names, "#day": "day", "#model": "model"},
        "ExpressionAttributeValues": values,
    }


def marker(table: str, batch: Batch, chunk: int, now: float) -> dict[str, Any]:
    return {
        "TableName": table,
        "Item": {
            "pk": {"S": f"{MARKER_PREFIX}{batch.batch_id}#{chunk}"},
            "applied_at": {"N": str(int(now))},
            "expires_at": {"N": str(int(now) + MARKER_RETENTION_DAYS * 86_400)},
        },
        "ConditionExpression": "attribute_not_exists(pk)",
    }


@dataclass
class Applied:
    chunks: int = 0  # applied now
    already: int = 0  # applied by an earlier delivery of the same batch: left as they are


def apply(
    payload: dict[str, Any],
    prices: Prices,
    *,
    table: str,
    dynamodb: Any,
    now: float | None = None,
    log: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Applied:
    """Add a delivery's served lines to the quota table, exactly once (see the module docstring)."""
    now = time.time() if now is None else now
    batch = read(payload, prices, log)
    applied = Applied()
    for number, chunk in enumerate(chunks(batch)):
        actions = [{"Put": marker(table, batch, number, now)}]
        actions += [{"Update": update(table, *key, counts, now)} for key, counts in chunk]
        if _transact(dynamodb, actions, sleep):
            applied.chunks += 1
        else:
            applied.already += 1
    if log is not None:
        log.info(
            "spend applied",
            extra={
                "batch_id": batch.batch_id,
                "lines": batch.lines,
                "skipped": batch.skipped,
                "sums": len(batch.sums),
                "chunks_applied": applied.chunks,
                "chunks_already_applied": applied.already,
            },
        )
    return applied


def _transact(dynamodb: Any, actions: list[dict[str, Any]], sleep: Callable[[float], None]) -> bool:
    """Apply one chunk: True, or False when its marker says an earlier delivery applied it. Two deliveries that
    add to one hot key's item at the same moment cancel one another (TransactionConflict): retried here after a
    jittered pause, a few times, before the invocation fails and Lambda's own retries take over."""
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            dynamodb.transact_write_items(TransactItems=actions)
            return True
        except Exception as error:
            if _marker_exists(error):
                return False
            if not _conflict(error) or attempt == CONFLICT_ATTEMPTS - 1:
                raise
            sleep(random.uniform(0, 0.05 * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _conflict(error: Exception) -> bool:
    response = getattr(error, "response", None) or {}
    reasons = response.get("CancellationReasons") or []
    return any(str(reason.get("Code")) == "TransactionConflict" for reason in reasons)


def _marker_exists(error: Exception) -> bool:
    """A transaction cancelled by its marker's condition only (the first action): this chunk was applied."""
    response = getattr(error, "response", None) or {}
    if response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    reasons = response.get("CancellationReasons") or []
    codes = [str(reason.get("Code", "None")) for reason in reasons]
    return bool(codes) and codes[0] == "ConditionalCheckFailed" and all(code == "None" for code in codes[1:])
