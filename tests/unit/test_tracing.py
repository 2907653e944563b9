"""X-Ray: the SDK is built only for sampled invocations that reach the upstream call."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mistral_gateway.platform import observability


@pytest.fixture(autouse=True)
def fresh_tracer() -> Iterator[None]:
    observability._tracer = None
    yield
    observability._tracer = None


def test_an_unsampled_invocation_never_builds_the_tracer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0")
    with observability.traced("mistral.chat"):
        pass
    assert observability._tracer is None


def test_a_sampled_invocation_traces_the_upstream_call_but_not_a_lazy_cache_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
    with observability.traced("cache.get", lazy=True):
        assert observability._tracer is None  # a hit never pays for the X-Ray SDK
    with observability.traced("mistral.chat"):
        pass
    assert observability._tracer is not None
