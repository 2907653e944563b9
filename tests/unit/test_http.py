"""Reading a request: the JSON body, Cache-Control and the caller, each failure a clear 4xx."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from mistral_gateway.platform.errors import GatewayError
from mistral_gateway.requests.http import CacheControl, caller_id, parse_json_body, raw_body


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "says"),
    [
        (None, "application/json", 400, "empty"),
        (b"", None, 400, "empty"),
        (b"{", "application/json", 400, "not valid JSON"),
        (b"[1, 2]", "application/json", 400, "JSON object"),
        (b'"text"', "application/json", 400, "JSON object"),
        (b'{"a": NaN}', "application/json", 400, "not valid JSON"),
        (b"\xff\xfe{}", "application/json", 400, "UTF-8"),
        (b"{}", "application/xml", 415, "application/json"),
        (b"{}", "multipart/form-data; boundary=x", 415, "application/json"),
        (b'{"x": "' + b"a" * 2000 + b'"}', "application/json", 413, "limit"),
    ],
)
def test_bad_bodies_get_a_4xx_that_says_what_is_wrong(
    raw: bytes | None, content_type: str | None, status: int, says: str
) -> None:
    with pytest.raises(GatewayError) as caught:
        parse_json_body(raw, content_type, max_bytes=1024)
    assert caught.value.status == status
    assert says in caught.value.message


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "text/plain",
        "application/vnd.api+json",
    ],
)
def test_json_bodies_are_accepted_with_any_json_content_type(content_type: str | None) -> None:
    assert parse_json_body(b'{"model": "m"}', content_type, max_bytes=1024) == {"model": "m"}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, CacheControl(read=True, store=True, max_age=None)),
        ("no-cache", CacheControl(read=False, store=True)),
        ("no-store", CacheControl(read=False, store=False)),
        ("No-Cache, max-age=60", CacheControl(read=False, store=True, max_age=60)),
        ("max-age=120", CacheControl(read=True, store=True, max_age=120)),
        ("max-age=0", CacheControl(read=False, store=True, max_age=0)),
        ("max-age=99999999999", CacheControl(read=True, store=True, max_age=30 * 86_400)),
        ("private, must-revalidate", CacheControl()),
    ],
)
def test_cache_control(header: str | None, expected: CacheControl) -> None:
    assert CacheControl.parse(header) == expected


def test_a_malformed_max_age_is_a_400() -> None:
    with pytest.raises(GatewayError) as caught:
        CacheControl.parse("max-age=soon")
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({}, None),
        ({"identity": {"apiKeyId": "key-1"}}, "key-1"),
        ({"authorizer": {"apiKeyId": "key-2", "principalId": "p"}}, "key-2"),
        ({"authorizer": {"principalId": "p-3"}}, "p-3"),
        ({"identity": {"apiKeyId": ""}}, None),
    ],
)
def test_caller_id_comes_from_the_request_context(context: dict[str, Any], expected: str | None) -> None:
    assert caller_id({"requestContext": context}) == expected


def test_base64_bodies_are_decoded_and_bad_base64_is_a_400() -> None:
    assert raw_body({"body": base64.b64encode(b"\xff{}").decode(), "isBase64Encoded": True}) == b"\xff{}"
    assert raw_body({"body": "{}", "isBase64Encoded": False}) == b"{}"
    assert raw_body({"body": None}) is None
    with pytest.raises(GatewayError) as caught:
        raw_body({"body": "not base64!", "isBase64Encoded": True})
    assert caught.value.status == 400


def test_an_sse_librarys_default_no_store_is_not_a_cache_instruction() -> None:
    from mistral_gateway.requests.http import CacheControl

    sse_defaults = {"accept": "text/event-stream", "cache-control": "no-store"}  # httpx-sse, LangChain
    assert CacheControl.from_headers(sse_defaults) == CacheControl()
    assert CacheControl.from_headers({"cache-control": "no-store"}) == CacheControl(read=False, store=False)


def test_the_gateways_own_header_wins() -> None:
    from mistral_gateway.requests.http import CacheControl

    headers = {"accept": "text/event-stream", "cache-control": "no-store", "x-gateway-cache-control": "no-cache"}
    assert CacheControl.from_headers(headers) == CacheControl(read=False, store=True)
    assert CacheControl.from_headers({"cache-control": "no-cache", "x-gateway-cache-control": "max-age=60"}) == (
        CacheControl(max_age=60)
    )
