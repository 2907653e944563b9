"""limits.py on its own: the nesting limit and string validity, with the place of a violation."""

from __future__ import annotations

from typing import Any

import pytest

from mistral_gateway.errors import InvalidRequest
from mistral_gateway.http import parse_json_body
from mistral_gateway.limits import MAX_DEPTH, check


def depth(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


def test_the_depth_limit_is_exact() -> None:
    check(depth(MAX_DEPTH))
    with pytest.raises(InvalidRequest, match=f"deeper than {MAX_DEPTH}"):
        check(depth(MAX_DEPTH + 1))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"a": ["ok", "\ud800"]}, "a.1"),
        ({"\udc00": 1}, None),
        ({"a": {"b": "x\udbff"}}, "a.b"),
    ],
)
def test_a_lone_surrogate_is_named_where_it_is(body: Any, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as raised:
        check(body)
    assert raised.value.param == param and raised.value.code == "invalid_unicode"


def test_valid_unicode_of_every_plane_passes() -> None:
    check({"text": "héllo wörld 中文 😀 \U0010fffd"})


def test_a_skipped_list_is_left_to_its_items() -> None:
    check({"requests": [depth(MAX_DEPTH + 5)]}, skip="requests")
    with pytest.raises(InvalidRequest):
        check({"other": [depth(MAX_DEPTH + 5)]}, skip="requests")


def test_nesting_json_itself_cannot_parse_is_a_400() -> None:
    with pytest.raises(InvalidRequest, match="deeper"):
        parse_json_body("[" * 200_000 + "]" * 200_000, None, max_bytes=1_000_000)
