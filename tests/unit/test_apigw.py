"""The local HTTP <-> API Gateway proxy translation."""

from __future__ import annotations

import base64

from gateway_dev.cloud.apigw import proxy_event, proxy_result


def test_an_http_request_becomes_a_rest_proxy_event() -> None:
    event = proxy_event(
        "post",
        "/v1/models/m1",
        resource="/v1/models/{model_id}",
        path_parameters={"model_id": "m1"},
        query_string="a=1&a=2&b=",
        headers=[("X-Multi", "1"), ("X-Multi", "2"), ("Content-Type", "json")],
        body=b'{"x": 1}',
        stage="prod",
        api_key_id="key-id",
    )
    assert event["httpMethod"] == "POST" and event["path"] == "/v1/models/m1"
    assert event["resource"] == "/v1/models/{model_id}"
    assert event["pathParameters"] == {"model_id": "m1"}
    assert event["headers"]["X-Multi"] == "2" and event["multiValueHeaders"]["X-Multi"] == ["1", "2"]
    assert event["queryStringParameters"] == {"a": "2", "b": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [""]}
    assert event["body"] == '{"x": 1}' and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "prod" and context["identity"]["apiKeyId"] == "key-id"
    assert context["requestId"] != proxy_event("GET", "/")["requestContext"]["requestId"]


def test_binary_bodies_are_base64_and_empty_ones_are_null() -> None:
    event = proxy_event("POST", "/x", body=b"\xff\x00")
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\x00"
    assert proxy_event("GET", "/x", body=b"")["body"] is None


def test_a_proxy_result_becomes_an_http_response() -> None:
    status, headers, body = proxy_result(
        {
            "statusCode": 201,
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "Content-Type": ["application/json"]},
            "headers": {"Content-Type": "ignored", "X-One": "1"},
            "body": "{}",
            "isBase64Encoded": False,
        }
    )
    assert status == 201 and body == b"{}"
    assert headers == [
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Content-Type", "application/json"),
        ("X-One", "1"),
    ]
    assert (
        proxy_result({"statusCode": 200, "body": base64.b64encode(b"\x00").decode(), "isBase64Encoded": True})[2]
        == b"\x00"
    )


def test_a_malformed_proxy_result_is_a_502_like_api_gateway() -> None:
    assert proxy_result({"body": "x"})[0] == 502
