"""Limits on what the gateway parses, decided once at the edge (http.parse_json_body) for every route.

- Nesting: at most MAX_DEPTH levels of arrays/objects. Real requests use under ten (a JSON schema in a tool
  rarely more than 20); pydantic's serialiser gives up near 255 and `json.loads` near 1,000, both as 500s.
- Strings: every string and key must be encodable as UTF-8. JSON's `\\ud800` escape decodes to a lone
  surrogate, which nothing downstream (the cache key, the SDK, Mistral) can encode.
- Numbers: whole numbers within a signed 64-bit integer (what Mistral's API and DynamoDB's 38 digits hold;
  a 4,000-digit `max_tokens` made the budgets' arithmetic fail), and no number that overflows a float
  (`1e999` parses to infinity, which no JSON encoder writes back). NaN and Infinity literals are refused by
  the parser itself (http.parse_json_body).

A violation is a 400 naming where it is. In a batch, the items are checked one by one (flow/completions.py), so a
bad item is that item's 400 and the others are still answered.
"""

from __future__ import annotations

import math
from typing import Any

from mistral_gateway.platform.errors import InvalidRequest

MAX_DEPTH = 64
MAX_INTEGER = 2**63 - 1  # the largest whole number a body may hold (and its negative)


def check(value: Any, *, skip: str | None = None, at: str = "") -> None:
    """Raise InvalidRequest if `value` nests deeper than MAX_DEPTH, holds a string that is not valid
    Unicode, or a number out of range (the module's docstring). `skip` names a top-level field checked later,
    item by item (a batch's `requests`)."""
    if not _within_limits(value, skip):
        _raise_where(value, skip, at)
        raise InvalidRequest("The request breaks the gateway's limits on nesting, text or numbers.")  # not reached


def _within_limits(value: Any, skip: str | None) -> bool:
    """The fast pass (a wide 1 MB body in tens of ms): no paths kept, only non-empty containers queued."""
    if isinstance(value, str):
        return value.isascii() or _encodable(value)
    if isinstance(value, int | float):
        return _number_within(value)
    pending: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while pending:
        node, depth = pending.pop()
        if type(node) is dict:
            if not all(key.isascii() or _encodable(key) for key in node):
                return False
            items: Any = node.values()
            if depth == 1 and skip is not None and skip in node:
                items = [item for key, item in node.items() if key != skip]
        else:
            items = node
        for item in items:
            item_type = type(item)
            if item_type is str:
                if not (item.isascii() or _encodable(item)):
                    return False
            elif item_type is dict or item_type is list:
                if depth >= MAX_DEPTH:  # the item itself stands at depth + 1
                    return False
                if item:
                    pending.append((item, depth + 1))
            elif item_type is int:
                if not -MAX_INTEGER <= item <= MAX_INTEGER:
                    return False
            elif item_type is float and not math.isfinite(item):
                return False
    return True


def _number_within(value: int | float) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -MAX_INTEGER <= value <= MAX_INTEGER
    return math.isfinite(value)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raise_where(value: Any, skip: str | None, at: str) -> None:
    """The slow pass, only for a body already known to break a limit: find where, and say so."""
    pending: list[tuple[Any, int, str]] = [(value, 1, at)]
    while pending:
        node, depth, path = pending.pop()
        if isinstance(node, str):
            _check_text(node, path)
            continue
        if isinstance(node, int | float) and not _number_within(node):
            raise InvalidRequest(
                f"The request holds a number out of range (whole numbers up to {MAX_INTEGER}, finite decimals).",
                param=path or None,
                code="number_out_of_range",
            )
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise InvalidRequest(f"The request nests deeper than {MAX_DEPTH} levels.", param=path or None)
        if isinstance(node, list):
            pending.extend((item, depth + 1, _join(path, str(index))) for index, item in enumerate(node))
            continue
        for key, item in node.items():
            _check_text(key, path)
            if not (skip and depth == 1 and key == skip):
                pending.append((item, depth + 1, _join(path, key)))


def _check_text(text: str, path: str) -> None:
    if not (text.isascii() or _encodable(text)):
        raise InvalidRequest(
            "The request holds a string that is not valid Unicode (a lone surrogate such as \\ud800).",
            param=path or None,
            code="invalid_unicode",
        )


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part
