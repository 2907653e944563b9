"""Hostile bodies on every route: never a 5xx, always Mistral's error shape, and a body that breaks the edge
limits (nesting, Unicode, number size, not UTF-8, not a JSON object) never reaches Mistral.

Every route of routes_policy.ROUTES (with account endpoints on, so each one reads its body) and every route
with its own handler (chat, FIM, embeddings, models, model card, batch), on the buffered function as API
Gateway drives it, and chat and FIM on the streaming function over HTTP as `make serve` serves them. The
caller has a token budget, so the budgets' arithmetic reads every body too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_dev.ops import quota as quota_admin
from mistral_gateway.requests import routes_policy

KEY = "hostile-bodies-caller-key"
CALLER = "key-id-hostile"
QUOTA_TABLE = "mistral-gateway-QuotaTable"
STATS = {"requests": 0, "5xx": 0, "refused_at_edge": 0, "upstream_calls_from_refused": 0}


@dataclass(frozen=True)
class Target:
    method: str
    path: str
    transport: str  # "buffered": the API function, in process | "http": make serve's server (streamed routes)
    fields: tuple[str, ...]  # where a hostile value is put

    @property
    def reads_body(self) -> bool:
        return self.method != "GET"


def _policy_targets() -> list[Target]:
    targets = []
    for rule in routes_policy.ROUTES:
        method = sorted(rule.methods)[0] if rule.methods else "POST"
        path = f"/v1/{rule.prefix}" + ("/some-model" if rule.prefix == "models" else "")
        targets.append(Target(method, path, "buffered", ("model", "max_tokens", "n", "input", "document")))
    return targets


CHAT_FIELDS = ("model", "messages", "max_tokens", "n", "temperature", "tools", "response_format")
OWN_HANDLERS = [
    Target("POST", "/v1/chat/completions", "buffered", CHAT_FIELDS),
    Target("POST", "/v1/fim/completions", "buffered", ("model", "prompt", "suffix", "max_tokens")),
    Target("POST", "/v1/embeddings", "buffered", ("model", "input", "output_dimension")),
    Target("GET", "/v1/models", "buffered", ("model",)),
    Target("GET", "/v1/models/mistral-small-latest", "buffered", ("model",)),
    Target("POST", "/v1/batch/chat/completions", "buffered", ("requests", "model")),
    Target("POST", "/v1/chat/completions", "http", (*CHAT_FIELDS, "stream")),
    Target("POST", "/v1/fim/completions", "http", ("model", "prompt", "max_tokens", "stream")),
]
TARGETS = _policy_targets() + OWN_HANDLERS


def _nested(levels: int) -> str:
    return "[" * levels + "0" + "]" * levels


# Hostile values as raw JSON text (some are not JSON anyone would write: that is the point), and whether each
# breaks the edge limits (then nothing may reach Mistral).
BREAKING = {
    "nested 65": _nested(65),
    "nested 990": _nested(990),
    "nested objects 990": '{"a":' * 990 + "0" + "}" * 990,
    "nested 100k": _nested(100_000),
    "4,000 digits": "1" + "0" * 3999,
    "-20 digits": "-" + "9" * 20,
    "2^63": str(2**63),
    "1e999": "1e999",
    "-1e400": "-1e400",
    "NaN": "NaN",
    "Infinity": "-Infinity",
    "lone surrogate": '"text \\ud800 here"',
    "lone surrogate key": '{"\\udfff": 1}',
}
ODD = {  # wrong types and odd values: a 4xx (ours or Mistral's) or an answer, never a 5xx
    "string": '"ten"',
    "negative": "-1",
    "zero": "0",
    "float": "1e308",
    "tiny": "5e-324",
    "max int": str(2**63 - 1),
    "bool": "true",
    "null": "null",
    "object": '{"x": [1, {"y": null}]}',
    "list": '[1, "a", null]',
    "empty list": "[]",
    "unicode": '"héllo 😀 \\u0000"',
}


@st.composite
def hostile(draw: Any, target: Target) -> tuple[bytes, bool, str]:
    """(raw body, whether it breaks the edge limits, what it is)."""
    kind = draw(st.sampled_from(["field", "field", "field", "whole"]))
    if kind == "whole":
        raw, breaks, label = draw(
            st.sampled_from(
                [
                    (b"\xff\xfe{not utf-8", True, "invalid UTF-8"),
                    (b'{"model": "caf\xe9"}', True, "latin-1 text"),
                    (b"[]", True, "a JSON list"),
                    (b'"a string"', True, "a JSON string"),
                    (b"42", True, "a JSON number"),
                    (b"null", True, "JSON null"),
                    (b'{"model": "m",', True, "cut JSON"),
                    (b"", True, "empty"),
                    (_nested(990).encode(), True, "a list nested 990 deep"),
                ]
            )
        )
        return raw, breaks, label
    name = draw(st.sampled_from(target.fields))
    label, value = draw(st.sampled_from(sorted({**BREAKING, **ODD}.items())))
    base = _base(target)
    inner = draw(st.booleans()) and target.path.endswith("batch/chat/completions")
    text = json.dumps({key: item for key, item in base.items() if key != name})[:-1]
    if inner:  # inside a batch item: that item's own 400, the batch still answered
        item = json.dumps(_chat())[:-1] + f', "{name}": {value}' + "}"
        raw = ("{" + f'"requests": [{item}, {json.dumps(_chat())}]' + "}").encode()
        return raw, False, f"batch item {name} = {label}"
    raw = (text + (", " if len(text) > 1 else "") + f'"{name}": {value}' + "}").encode()
    # A batch's `requests` are judged item by item: a bad item is that item's 400 in a 200 (limits.py).
    breaks = label in BREAKING and not (name == "requests" and target.path.endswith("batch/chat/completions"))
    return raw, breaks, f"{name} = {label}"


def _chat() -> dict[str, Any]:
    return {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "hostile body probe"}]}


def _base(target: Target) -> dict[str, Any]:
    if "chat/completions" in target.path and "batch" not in target.path:
        return {**_chat(), **({"stream": True} if target.transport == "http" else {})}
    if "batch" in target.path:
        return {"requests": [_chat()]}
    if "fim" in target.path:
        return {"model": "codestral-latest", "prompt": "def f(", "stream": target.transport == "http"}
    if "embeddings" in target.path:
        return {"model": "mistral-embed", "input": ["probe"]}
    if "ocr" in target.path:
        return {"model": "mistral-ocr-latest", "document": {"type": "document_url", "document_url": "data:x"}}
    return {"model": "mistral-small-latest", "input": "probe", "messages": [{"role": "user", "content": "probe"}]}


@pytest.fixture
def served(gateway: Any, template: Any, monkeypatch: pytest.MonkeyPatch, reconfigure: Any) -> Iterator[Any]:
    """The buffered function in process and `make serve`'s server, one caller key with a token budget, account
    routes passed through (AccountRoutes=shared, so every route of the table reads its body)."""
    from gateway_dev.runner.asgi import BackgroundServer, LocalGateway
    from gateway_dev.runner.bridge import ApiBridge

    monkeypatch.setenv("ACCOUNT_ROUTES", "shared")
    reconfigure()
    quota_admin.set_limits(QUOTA_TABLE, CALLER, {"tokens_per_day": 10**12, "requests_per_day": 10**9})
    server = BackgroundServer(LocalGateway(ApiBridge(template, api_keys={KEY: CALLER})))
    with httpx2.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client:
        yield gateway, client
    server.stop()


def send(served: Any, target: Target, raw: bytes, content_type: str) -> tuple[int, bytes, str]:
    gateway, client = served
    headers = {"Content-Type": content_type}
    if target.transport == "buffered":
        response = gateway.request(target.method, target.path, raw=raw, headers=headers, api_key_id=CALLER)
        return response.status, response.body, response.header("content-type") or ""
    answer = client.request(target.method, target.path, content=raw, headers=headers)
    return answer.status_code, answer.content, answer.headers.get("content-type", "")


def assert_mistral_error(status: int, body: bytes, *, relayed: bool = False) -> None:
    """The gateway's own error shape; a 4xx Mistral wrote is relayed as it is (its 422 carries
    `message: {"detail": [...]}`, an unknown path `{"detail": "Not Found"}`)."""
    error = json.loads(body)
    if relayed and "detail" in error:
        return
    assert error["object"] == "error" and isinstance(error["message"], str | dict) and error["type"], error


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI cannot flake
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_no_body_on_any_route_causes_a_5xx(served: Any, emulator: Any, data: Any) -> None:
    # Given any route and a hostile body for it
    target = data.draw(st.sampled_from(TARGETS), label="target")
    raw, breaks, label = data.draw(hostile(target), label="body")
    content_type = data.draw(st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain"]))
    calls_before = emulator.calls()
    # When the caller sends it
    status, body, _ = send(served, target, raw, content_type)
    STATS["requests"] += 1
    STATS["5xx"] += status >= 500
    # Then it is never a 5xx, and a refusal is in Mistral's error shape
    assert status < 500, (target, label, status, body[:300])
    if status >= 400:
        assert_mistral_error(status, body, relayed=emulator.calls() > calls_before)
    if status == 200 and target.path.endswith("batch/chat/completions"):
        assert all(item["status"] < 500 for item in json.loads(body)["data"]), body[:500]
    # And a body that breaks the edge limits is refused before anything reaches Mistral
    if breaks and target.reads_body:
        STATS["refused_at_edge"] += 1
        STATS["upstream_calls_from_refused"] += emulator.calls() - calls_before
        assert 400 <= status < 500, (target, label, status, body[:300])
        assert emulator.calls() == calls_before, (target, label)


def test_each_finding_of_the_probe_is_a_400_on_each_route(served: Any, emulator: Any) -> None:
    # Given the findings of the probe (990-deep JSON, a 4,000-digit max_tokens with a token budget, ...)
    failures = []
    for target in TARGETS:
        for label in ("nested 990", "nested objects 990", "4,000 digits", "1e999", "lone surrogate"):
            field = "max_tokens" if "max_tokens" in target.fields else target.fields[0]
            text = json.dumps({key: value for key, value in _base(target).items() if key != field})[:-1]
            raw = f'{text}, "{field}": {BREAKING[label]}' + "}"
            calls_before = emulator.calls()
            # When each is sent to each route
            status, body, _ = send(served, target, raw.encode(), "application/json")
            STATS["requests"] += 1
            STATS["5xx"] += status >= 500
            # Then each is the gateway's own 400 (the models routes read no body), and Mistral saw nothing
            if not target.reads_body:
                continue
            STATS["refused_at_edge"] += 1
            STATS["upstream_calls_from_refused"] += emulator.calls() - calls_before
            if status != 400 or emulator.calls() != calls_before or json.loads(body).get("object") != "error":
                failures.append((target.transport, target.method, target.path, label, status, body[:120]))
    assert not failures, failures


def test_every_route_of_the_policy_table_is_driven() -> None:
    driven = {target.path.removeprefix("/v1/") for target in TARGETS}
    assert {rule.prefix for rule in routes_policy.ROUTES} - {path.split("/some-model")[0] for path in driven} == set()


@pytest.fixture(autouse=True, scope="module")
def report() -> Iterator[None]:
    yield
    print(f"\nhostile bodies: {STATS}")
