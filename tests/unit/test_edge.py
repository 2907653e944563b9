"""Small edge policies on their own: counts read from a body, the fallbacks header, inference routes' exact
paths, and which OCR documents are content-addressed (cacheable)."""

from __future__ import annotations

import pytest

from mistral_gateway.flow.passthrough import references_remote_content
from mistral_gateway.platform.errors import InvalidRequest
from mistral_gateway.policies import token_bound
from mistral_gateway.requests import routes_policy
from mistral_gateway.requests.http import fallbacks_allowed
from mistral_gateway.requests.routes_policy import Policy


@pytest.mark.parametrize("max_tokens", [10**4000, 10**40, 1e300, 2**63])
def test_a_huge_max_tokens_is_a_capped_count_not_an_overflow(max_tokens: float) -> None:
    # Given a max_tokens (and n) no float holds, as a budgeted caller may send on a passed route
    body = {"model": "m", "input": "x", "messages": [], "max_tokens": max_tokens, "n": max_tokens}
    body.pop("input")
    # When the budget estimates the request
    estimate = token_bound.estimate_tokens(body, 1_024)
    # Then it is a whole number DynamoDB can hold (38 digits), not an OverflowError
    assert estimate >= token_bound.MAX_WHOLE and len(str(estimate)) <= 38


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, "7", True, None])
def test_counts_that_are_not_whole_numbers_are_ignored(value: object) -> None:
    assert token_bound._whole(value) is None


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        (None, True),
        ("", True),
        ("on", True),
        (" TRUE ", True),
        ("off", False),
        ("Off", False),
        ("none", False),
        ("disabled", False),
        ("false", False),
        ("0", False),
        ("no", False),
    ],
)
def test_fallbacks_header_spellings(header: str | None, allowed: bool) -> None:
    assert fallbacks_allowed(header) is allowed


@pytest.mark.parametrize("header", ["off;", "off, on", "of", "never", "off please"])
def test_an_unknown_fallbacks_value_is_a_400_not_a_guess(header: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        fallbacks_allowed(header)
    assert raised.value.status == 400 and raised.value.code == "invalid_header"


@pytest.mark.parametrize(
    "subpath",
    [
        "ocr/files",
        "ocr/x",
        "moderations/abc",
        "chat/classifications/x",
        "agents/completions/..;/..;/files",
        "agents/completions/x",
        "audio/speech/voices",
        "audio/transcriptions/",  # a trailing slash is the route itself (below)
    ],
)
def test_inference_routes_match_their_exact_path_only(subpath: str) -> None:
    rule = routes_policy.rule_for("POST", subpath)
    if subpath.endswith("/") and subpath.count("/") == 2:
        assert rule.policy is Policy.PASSED
        return
    assert rule is routes_policy.INFERENCE_SUBPATH


def test_account_routes_still_match_their_sub_paths() -> None:
    assert routes_policy.rule_for("GET", "files/abc/content").prefix == "files"
    assert routes_policy.rule_for("GET", "agents/ag_1").prefix == "agents"
    assert routes_policy.rule_for("POST", "ocr").policy is Policy.CACHED


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a.pdf",
        "HTTPS://example.com/a.pdf",
        " http://example.com/a.pdf",
        "\thttps://example.com/a.pdf",
        "h\ttp://example.com/a.pdf",
        "//example.com/a.pdf",
        "file:///etc/passwd",
        "ftp://example.com/a.pdf",
        "example.com/a.pdf",
        "",
        " data:application/pdf;base64,AAAA",
    ],
)
def test_any_document_url_but_a_data_uri_is_remote(url: str) -> None:
    assert references_remote_content({"document": {"type": "document_url", "document_url": url}})
    assert references_remote_content({"messages": [{"content": [{"image_url": {"url": url}}]}]})


def test_a_data_uri_or_an_uploaded_file_is_content_addressed() -> None:
    assert not references_remote_content({"document": {"document_url": "data:application/pdf;base64,AAAA"}})
    assert not references_remote_content({"document": {"document_url": "DATA:application/pdf;base64,AAAA"}})
    assert not references_remote_content({"document": {"type": "file", "file_id": "http://not-a-url-field"}})
