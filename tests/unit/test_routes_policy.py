"""One table decides which Mistral routes are cached, passed through, or off by default; the README shows it."""

from __future__ import annotations

import re

import pytest

from gateway_dev.cloud.template import ROOT
from mistral_gateway.requests.routes_policy import ROUTES, UNLISTED, Policy, rule_for

EXPECTED = """
POST ocr cached
POST moderations cached
POST chat/moderations cached
POST chat/classifications cached
POST agents/completions passed
POST audio/transcriptions passed
GET agents account
DELETE agents/ag-1 account
GET files/f-1/content account
POST conversations account
GET audio/voices account
DELETE models/ft:x account
GET ocrx account
GET ocr account
POST something-new account
"""  # the last three: whole segments only; a method Mistral does not serve there; a route nobody listed


@pytest.mark.parametrize(("method", "path", "policy"), [line.split() for line in EXPECTED.strip().splitlines()])
def test_each_route_gets_its_policy(method: str, path: str, policy: str) -> None:
    assert rule_for(method, path).policy is Policy[policy.upper()]


def test_a_route_nobody_listed_is_closed() -> None:
    assert rule_for("GET", "workflows/w-1") is UNLISTED and UNLISTED.policy is Policy.ACCOUNT


def test_the_readme_table_is_the_policy_table() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = set(re.findall(r"^\| `/v1/([^`]+)` \| ([^|]+?) \| ([a-z ]+) \|", readme, re.MULTILINE))
    listed = {(prefix, methods.strip(), policy) for prefix, methods, policy in rows}
    expected = {(r.prefix, " ".join(sorted(r.methods)) or "any", r.policy.value) for r in ROUTES}
    assert listed >= expected, sorted(expected - listed)
