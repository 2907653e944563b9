"""The container on its own: each piece built once and on first use, a new container per start, the collector
back on after every build."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from mistral_gateway import container
from mistral_gateway.platform.config import Settings


@pytest.fixture(autouse=True)
def fresh_container() -> Iterator[None]:
    """Tests here replace the process's container; the next test that needs one starts its own."""
    yield
    container.start()


def test_a_piece_is_built_once_even_when_threads_ask_at_the_same_moment() -> None:
    built: list[int] = []
    gate = threading.Barrier(8)
    state = container.Container(Settings())

    def build() -> object:
        built.append(1)
        return object()

    def ask(_: int) -> object:
        gate.wait()
        return state._once("test", "piece", build)

    with ThreadPoolExecutor(max_workers=8) as pool:
        pieces = set(map(id, pool.map(ask, range(8))))
    assert len(pieces) == 1 and built == [1]


def test_the_collector_is_back_on_after_a_build_even_a_failed_one() -> None:
    state = container.Container(Settings())
    seen: list[bool] = []
    state._once("test", "ok", lambda: seen.append(gc.isenabled()) or 1)

    def broken() -> object:
        raise RuntimeError("cannot build")

    with pytest.raises(RuntimeError):
        state._once("test", "broken", broken)
    assert seen == [False] and gc.isenabled()


def test_pieces_come_from_the_settings_and_the_clock_it_was_started_with() -> None:
    settings = Settings(
        quota_table_name="quota", circuit_failure_threshold=2, model_prices={"mine": (1.0, 2.0)}, cors_allow_origin="x"
    )
    state = container.start(settings, clock=lambda: 42.0)
    assert container.current() is state and container.current().settings.cors_allow_origin == "x"
    assert state.budgets.clock() == 42.0 and state.budgets.enabled
    assert state.breaker("mistral").threshold == 2 and state.breaker("mistral") is state.breaker("mistral")
    assert state.breaker("mistral") is not state.breaker("self-hosted")
    assert state.prices["mine"] == (1.0, 2.0) and "mistral-small-latest" in state.prices


def test_a_new_start_forgets_what_the_last_container_built() -> None:
    first = container.start(Settings())
    breaker = first.breaker("mistral")
    breaker.failed()
    second = container.start(Settings())
    assert second is not first and second.breaker("mistral").failures == 0


def test_the_aws_clients_share_one_session_each_with_its_own_events(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a container, and botocore counting the sessions it builds
    import botocore.session

    sessions: list[object] = []
    real_session = botocore.session.get_session

    def counted_session(*args: object, **kwargs: object) -> object:
        sessions.append(real_session(*args, **kwargs))  # type: ignore[arg-type]
        return sessions[-1]

    monkeypatch.setattr(botocore.session, "get_session", counted_session)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    state = container.Container(Settings())
    # When it builds clients for two services
    dynamodb, secrets = state.aws_client("dynamodb"), state.aws_client("secretsmanager")
    # Then one session built both (a second one reloads the SDK's data: tens of ms of a cold miss), and a handler
    # registered on one client's events does not reach the other's
    assert len(sessions) == 1
    assert state.aws_client("dynamodb") is dynamodb
    assert dynamodb.meta.events is not secrets.meta.events


def test_an_aws_client_does_not_load_boto3() -> None:
    # Given a fresh process (a cold container) with the gateway's package
    script = (
        "import sys; from mistral_gateway import container; from mistral_gateway.platform.config import Settings\n"
        "client = container.Container(Settings()).aws_client('dynamodb')\n"
        "print(type(client).__name__, 'boto3' in sys.modules, 'botocore' in sys.modules)"
    )
    # When it builds a DynamoDB client
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
    )
    # Then the client is botocore's DynamoDB client, and boto3 (resources and a session wrapper, unused) was never
    # imported: a cold cache hit skips its import
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["DynamoDB", "False", "True"]
