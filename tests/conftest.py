"""Shared fixtures: moto-backed AWS built from template.yaml, the Mistral emulator on 127.0.0.1, the handler.

The network is closed for the whole run: only loopback and Unix sockets may connect.
"""

from __future__ import annotations

import io
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

TEST_MISTRAL_KEY = "test-mistral-key-0123456789"

# Credentials and region for boto3 before anything imports it; never real ones.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("MISTRAL_API_KEY", None)

import aws_permissions  # noqa: E402
from runtime_api import runtime_api  # noqa: E402, F401 (a fixture: a fake Lambda Runtime API)

from gateway_dev.cloud.template import Template  # noqa: E402

TEMPLATE = Template()
# The function's environment exactly as the template gives it (Globals + its own variables).
os.environ.update(TEMPLATE.function_environment("ApiFunction"))


_real_connect = socket.socket.connect


def _loopback_only(sock: socket.socket, address: Any) -> Any:
    if sock.family == socket.AF_UNIX or (
        isinstance(address, tuple) and str(address[0]) in {"127.0.0.1", "::1", "localhost"}
    ):
        return _real_connect(sock, address)
    raise RuntimeError(f"tests must not touch the network (connect to {address!r})")


socket.socket.connect = _loopback_only  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def template() -> Template:
    return TEMPLATE


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[Any]:
    from gateway_dev.emulator.server import MistralEmulator

    server = MistralEmulator(api_key=TEST_MISTRAL_KEY, accept_any_model=True).start()
    yield server
    server.stop()


@pytest.fixture
def emulator(emulator_server: Any) -> Iterator[Any]:
    emulator_server.reset()
    emulator_server.api_key = TEST_MISTRAL_KEY
    emulator_server.accept_any_model = True  # tests use made-up model names; a test of unknown models flips it
    yield emulator_server
    emulator_server.reset()


@pytest.fixture
def aws(template: Template) -> Iterator[Any]:
    """DynamoDB and Secrets Manager in moto, with the table and secret the template defines."""
    from moto import mock_aws

    from gateway_dev.cloud.resources import create_resources, make_moto_writes_atomic

    make_moto_writes_atomic()
    with mock_aws():
        yield create_resources(template, mistral_api_key=TEST_MISTRAL_KEY)


def reset_gateway_state(clock: Any = None) -> None:
    """A new Lambda container: settings read again, no clients, no cached key, closed circuits, no metrics,
    the cold start flag up (and, if given, a clock of its own for the budgets' windows)."""
    from aws_lambda_powertools.metrics.provider import cold_start
    from aws_lambda_powertools.utilities import parameters

    from mistral_gateway import container
    from mistral_gateway.platform.observability import metrics

    container.start(clock=clock or container.wall_clock)
    parameters.clear_caches()
    metrics.clear_metrics()
    cold_start.reset_cold_start_flag()


@dataclass
class ProxyResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


class Gateway:
    """The API function as API Gateway drives it: proxy events in, proxy results out."""

    def __init__(self, template: Template, logs: io.StringIO) -> None:
        from gateway_dev.runner.functions import load_function

        self.template = template
        self.function = load_function(template, "ApiFunction")
        self.logs = logs
        self.last_result: dict[str, Any] = {}
        self.canaries: set[str] = set()  # what this test sent that must never reach a log line
        self.aws_calls: list[tuple[str, dict[str, Any]]] = []  # (action, params) of the functions' AWS calls

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | str | None = None,
        api_key_id: str | None = None,
    ) -> ProxyResponse:
        from gateway_dev.cloud.apigw import proxy_event, proxy_result

        path, _, query = path.partition("?")
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        self.canaries |= {v for k, v in all_headers.items() if k.lower() in ("authorization", "x-api-key") and v}
        self.canaries |= prompt_texts(body)
        route = next((r for r in self.template.routes() if r.matches(method, path)), None)
        event = proxy_event(
            method,
            path,
            resource=route.path if route else path,
            headers=list(all_headers.items()),
            body=payload,
            api_key_id=api_key_id,
            query_string=query,
        )
        result = self.function.invoke(event)  # a local: tests call this from several threads at once
        self.settle()  # its store, which runs after the response: what a test reads next may be it
        self.last_result = result
        status, header_list, response_body = proxy_result(result)
        return ProxyResponse(status, dict(header_list), response_body)

    def settle(self) -> None:
        """Wait for the work left for after the responses so far (the buffered function's and, over HTTP, the
        streaming app's): the stores of their answers."""
        from mistral_gateway.platform import after_response

        assert after_response.settle(), "a store after a response is still running"

    def chat(self, body: dict[str, Any], **kwargs: Any) -> ProxyResponse:
        return self.request("POST", "/v1/chat/completions", body, **kwargs)

    def log_records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line.startswith("{")]


@pytest.fixture
def gateway(
    aws: Any, emulator: Any, template: Template, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Gateway]:
    """The API handler wired to moto and the emulator, with a fresh container state."""
    import time

    from gateway_dev.runner import spend_delivery
    from mistral_gateway.platform.observability import logger

    monkeypatch.setenv("MISTRAL_SERVER_URL", emulator.url)
    # Budgets count per minute and per day: a test must not straddle a window's end (CI once saw a minute
    # budget refill between two requests), so the container's clock stands still at the start of today.
    today = time.time() // 86_400 * 86_400 + 1.0
    logs = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(logs)  # type: ignore[attr-defined]
    try:
        gateway = Gateway(template, logs)  # imports the handler on first use: a cold start, with its container
        reset_gateway_state(clock=lambda: today)  # then a new container for this test
        undelivered_before = len(_spend_dead_letters())
        gateway.aws_calls = aws_permissions.record_calls(monkeypatch)
        yield gateway
        gateway.settle()  # every store after a response, the HTTP tests' too
        audit_logs(gateway, emulator)
        aws_permissions.audit_permissions(template, gateway.aws_calls)  # each allowed by the functions' role
    finally:
        spend_delivery.unsubscribe()  # the test's served lines are applied while its AWS (moto) is up
        handler.setStream(previous)  # type: ignore[attr-defined]
        reset_gateway_state()
    # Every served line this test wrote could be applied by the spend function (none went to the dead letters)
    if request.node.get_closest_marker("spend_undeliverable") is None:
        assert _spend_dead_letters()[undelivered_before:] == []


def _spend_dead_letters() -> list[Any]:
    from gateway_dev.runner import spend_delivery

    delivery = spend_delivery._INSTALLED.get("delivery")
    return delivery.dead_letters if delivery is not None else []


@pytest.fixture
def owns(gateway: Gateway) -> Any:
    """Given `caller` owns the resource `kind`/`rid` in the ownership ledger (for resources a test cannot make
    through the gateway first, e.g. a fine-tuned classifier)."""
    from mistral_gateway.container import current
    from mistral_gateway.stores.ledger import owner_of

    def record(kind: str, rid: str, caller: str | None = None) -> None:
        current().ledger.record(owner_of(caller), kind, rid)

    return record


@pytest.fixture
def reconfigure() -> Any:
    """Call after changing the function's environment: settings are read once per container, so a new
    container reads them (keeping the test's clock), as a new Lambda container would."""
    from mistral_gateway import container

    def restart() -> None:
        container.start(clock=container.current().clock)

    return restart


PROMPT_FIELDS = frozenset({"content", "prompt", "suffix", "input", "text", "arguments"})


def prompt_texts(value: Any, field: str | None = None) -> set[str]:
    """Every prompt-like string in a request body (long enough not to match by accident)."""
    if isinstance(value, dict):
        return set().union(*(prompt_texts(item, key) for key, item in value.items()))
    if isinstance(value, list):
        return set().union(*(prompt_texts(item, field) for item in value))
    if isinstance(value, str) and field in PROMPT_FIELDS and len(value) >= 12:
        return {value}
    return set()


def audit_logs(gateway: Gateway, emulator: Any) -> None:
    """The log audit, after every test that drives the gateway: no key, caller key or prompt in any log line."""
    if os.environ.get("LOG_PROMPTS", "").lower() == "true":
        return  # the documented debug switch: prompts and answers are logged on purpose
    canaries = {TEST_MISTRAL_KEY, emulator.api_key, *gateway.canaries}
    for request in list(emulator.requests):  # what reached Mistral, including via HTTP and the SDKs
        canaries |= prompt_texts(request.json)
        canaries.add(request.headers.get("authorization", "").removeprefix("Bearer ").strip())
    logs = gateway.logs.getvalue()
    leaked = sorted(canary for canary in canaries if len(canary) >= 8 and canary in logs)
    assert not leaked, f"secret or prompt text found in the logs: {[c[:40] for c in leaked]}"


@pytest.fixture
def http_gateway(gateway: Gateway, template: Template) -> Iterator[str]:
    """The API served over HTTP on 127.0.0.1 as `make serve` serves it (streamed routes by the streaming app,
    the rest by the buffered handler), for tests that use real SDKs."""
    from gateway_dev.runner.asgi import BackgroundServer, LocalGateway
    from gateway_dev.runner.bridge import ApiBridge

    server = BackgroundServer(LocalGateway(ApiBridge(template)))
    yield server.url
    server.stop()


@pytest.fixture
def keyed_http_gateway(gateway: Gateway, template: Template) -> Iterator[Any]:
    """Call it with {caller key: key id} to serve the API over HTTP with those keys enforced, as `make serve` does."""
    from gateway_dev.runner.asgi import BackgroundServer, LocalGateway
    from gateway_dev.runner.bridge import ApiBridge

    servers: list[Any] = []

    def serve(api_keys: dict[str, str]) -> str:
        servers.append(BackgroundServer(LocalGateway(ApiBridge(template, api_keys=api_keys))))
        return str(servers[-1].url)

    yield serve
    for server in servers:
        server.stop()


def chat_body(text: str = "Hello there", **fields: Any) -> dict[str, Any]:
    return {"model": "mistral-small-latest", "messages": [{"role": "user", "content": text}], **fields}


@pytest.fixture(name="chat_body")
def chat_body_fixture() -> Any:
    """Builds a minimal valid chat request: chat_body("text", temperature=0.2)."""
    return chat_body


def sum_emf_metrics(stdout: str) -> dict[str, float]:
    """Every EMF metric in the captured stdout, summed by name."""
    emitted: dict[str, float] = {}
    for line in stdout.splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                emitted[metric["Name"]] = emitted.get(metric["Name"], 0) + (
                    sum(value) if isinstance(value, list) else value
                )
    return emitted


@pytest.fixture
def emitted_metrics(capsys: pytest.CaptureFixture[str]) -> Any:
    """Call it to get the EMF metrics written to stdout since the test began (or the last call)."""
    return lambda: sum_emf_metrics(capsys.readouterr().out)


@pytest.fixture(scope="session")
def authorizer(template: Template) -> Any:
    """The caller-key authorizer's module (functions/authorizer/app.py), loaded as Lambda would."""
    from gateway_dev.runner.functions import handler_module, load_function

    load_function(template, "AuthorizerFunction")
    return handler_module(template, "AuthorizerFunction")
