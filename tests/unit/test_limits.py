"""limits.py on its own: the nesting limit and string validity, with the place of a violation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mistral_gateway.platform.errors import InvalidRequest
from mistral_gateway.requests.http import parse_json_body
from mistral_gateway.requests.limits import MAX_DEPTH, MAX_INTEGER, check


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


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ('{"max_tokens": 1' + "0" * 3999 + "}", "max_tokens"),  # a 4,000-digit whole number
        ('{"n": -99999999999999999999}', "n"),
        ('{"a": [1e999]}', "a.0"),  # parses to infinity
        ('{"a": {"b": -1e400}}', "a.b"),
    ],
)
def test_a_number_out_of_range_is_a_400_naming_where_it_is(raw: str, param: str) -> None:
    # Given a body whose number no downstream arithmetic (budgets, DynamoDB, the SDK) can hold
    # When it is parsed at the edge
    # Then it is refused with a 400 that names the field
    with pytest.raises(InvalidRequest) as raised:
        parse_json_body(raw, "application/json", max_bytes=1_000_000)
    assert raised.value.param == param and raised.value.code == "number_out_of_range"


def test_numbers_within_range_pass() -> None:
    check({"max_tokens": MAX_INTEGER, "n": -MAX_INTEGER, "temperature": 1e308, "top_p": -0.0})


def test_nesting_json_itself_cannot_parse_is_a_400() -> None:
    with pytest.raises(InvalidRequest, match="deeper"):
        parse_json_body("[" * 200_000 + "]" * 200_000, None, max_bytes=1_000_000)


def reference_ok(value: Any, depth: int = 1) -> bool:
    """The limits as plainly as they can be said (recursively: fine for the small values generated)."""
    if isinstance(value, str):
        return "\ud800" not in value
    if isinstance(value, list):
        return depth <= MAX_DEPTH and all(reference_ok(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return depth <= MAX_DEPTH and all(reference_ok(k) and reference_ok(v, depth + 1) for k, v in value.items())
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) <= MAX_INTEGER
    if isinstance(value, float):
        return value == value and abs(value) != float("inf")
    return True


texts = st.sampled_from(["", "a", "é", "\ud800", "x\ud800y", "😀"])
numbers = (
    st.integers()
    | st.sampled_from([MAX_INTEGER, -MAX_INTEGER, MAX_INTEGER + 1, -MAX_INTEGER - 1, 10**4000, True])
    | st.floats()
)
leaves = st.none() | numbers | texts


@st.composite
def near_the_limit(draw: Any) -> Any:
    """A small tree, sometimes buried just above or below the depth limit."""
    tree = draw(
        st.recursive(
            leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=8
        )
    )
    return (
        depth(draw(st.sampled_from([0, 0, MAX_DEPTH - 3, MAX_DEPTH - 1, MAX_DEPTH])))
        if tree is None
        else _bury(tree, draw(st.sampled_from([0, MAX_DEPTH - 4, MAX_DEPTH - 1])))
    )


def _bury(value: Any, levels: int) -> Any:
    for _ in range(levels):
        value = [value]
    return value


@settings(max_examples=400, deadline=None, derandomize=True)
@given(value=near_the_limit())
def test_the_fast_pass_and_the_reference_agree(value: Any) -> None:
    if reference_ok(value):
        check(value)
    else:
        with pytest.raises(InvalidRequest):
            check(value)
