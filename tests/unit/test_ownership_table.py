"""One table decides, per account route, what is owned, referenced, derived, listed or refused; the README shows it."""

from __future__ import annotations

import re

import pytest

from gateway_dev.cloud.template import ROOT
from mistral_gateway.platform.errors import InvalidRequest
from mistral_gateway.requests import references
from mistral_gateway.requests.ownership import ROUTES, UNLISTED, Access, match

EXPECTED = """
POST files owned
GET files listed
GET files/f-1 referenced file:f-1
GET files/f-1/content referenced file:f-1
DELETE batch/jobs/b-1 referenced batch_job:b-1
POST batch/jobs/b-1/cancel referenced batch_job:b-1
GET agents/ag_1/versions/3 derived agent:ag_1
POST conversations/c-1/restart derived conversation:c-1
POST conversations/c-1 derived conversation:c-1
GET libraries/l-1/documents listed library:l-1
GET libraries/l-1/documents/d-1/text_content referenced library:l-1,document:d-1
PUT libraries/l-1/share refused
POST connectors/gmail/user/credentials refused
GET connectors refused
DELETE models/ft:open-mistral-7b:x:y referenced model:ft:open-mistral-7b:x:y
GET agents/pages refused
PUT files/f-1 refused
GET workflows/w-1 refused
"""  # the last three: a method Mistral does not serve there; a route nobody listed


@pytest.mark.parametrize("line", EXPECTED.strip().splitlines())
def test_each_account_route_gets_its_access_and_the_ids_to_check(line: str) -> None:
    method, path, access, *ids = line.split()
    found = match(method, path)
    assert found.route.access is Access(access)
    if found.route.access is not Access.REFUSED:
        expected = [tuple(pair.split(":", 1)) for pair in ids[0].split(",")] if ids else []
        assert found.owned_ids() == expected


def test_a_route_nobody_listed_is_refused_with_a_reason() -> None:
    assert match("POST", "observability/datasets").route is UNLISTED
    assert UNLISTED.access is Access.REFUSED and UNLISTED.why


def test_every_route_says_why_and_creators_name_their_kind() -> None:
    for route in ROUTES:
        assert route.why, route
        assert (route.access in (Access.OWNED, Access.LISTED)) == bool(route.kind), route


def test_ids_inside_bodies_are_found_wherever_mistral_takes_them() -> None:
    body = {
        "model": "ft:open-mistral-7b:abc:20250101:x",
        "agent_id": "ag_1",
        "conversation_id": "conv_1",
        "document": {"type": "file", "file_id": "f-ocr"},
        "input_files": ["f-in"],
        "training_files": [{"file_id": "f-train", "weight": 1}],
        "validation_files": ["f-val"],
        "tools": [{"type": "document_library", "library_ids": ["lib-1"]}, {"type": "web_search"}],
    }
    assert references.of_body(body) == [
        ("model", "ft:open-mistral-7b:abc:20250101:x"),
        ("agent", "ag_1"),
        ("conversation", "conv_1"),
        ("file", "f-ocr"),
        ("file", "f-in"),
        ("file", "f-train"),
        ("file", "f-val"),
        ("library", "lib-1"),
    ]
    assert references.of_body({"model": "mistral-small-latest", "messages": []}) == []


@pytest.mark.parametrize(
    "body",
    [{"agent_id": 5}, {"input_files": "f-1"}, {"input_files": ["../x"]}, {"document": {"file_id": "a/b"}}],
)
def test_a_malformed_id_in_a_body_is_a_400(body: dict) -> None:
    with pytest.raises(InvalidRequest):
        references.of_body(body)


def test_the_readme_table_is_the_ownership_table() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = set(re.findall(r"^\| ([A-Z]+) \| `/v1/([^`]+)` \| ([a-z]+) \| (.+?) \|$", readme, re.MULTILINE))
    expected = {(r.method, r.pattern, r.access.value, r.why) for r in ROUTES}
    assert rows == expected, sorted(expected ^ rows)
