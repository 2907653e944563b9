"""Model fallbacks: when the requested model keeps failing, the next target of the operator's chain answers.

The operator sets chains per requested model (FallbackChains, JSON), e.g.
`{"mistral-large-latest": ["mistral-medium-latest", "self-hosted:mistral-small-24b"]}`. A target
`self-hosted:<model>` is that model on the second upstream (SelfHostedServerUrl), with its own key and its
own circuit breaker. Each target gets the whole retry policy (retry.call), all within the request's one
deadline; the next target is tried only when the previous one failed in a way that says nothing about the
request: rate limited, 5xx or garbage, timeout, unreachable, circuit open, credentials unreadable or
refused. Never on the caller's own mistakes (a 4xx from Mistral other than 429, a spent budget), never
after a stream's first byte (streams fall back only while opening), and never when the caller sent
`X-Gateway-Fallbacks: off`.

An answer from a fallback says so (its own `model` field, `X-Served-Model`, `X-Served-Upstream`,
`X-Fallback-Reason`), is counted (`ModelFallbacks` by from / to / reason) and is never stored: the cache
holds only what the requested model answered. Cost headers and budgets count what the answering model used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from mistral_gateway.container import settings
from mistral_gateway.platform import observability
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.errors import (
    GatewayError,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from mistral_gateway.platform.observability import logger
from mistral_gateway.policies import key_policy
from mistral_gateway.upstream.retry import MIN_ATTEMPT_MS, MISTRAL, SELF_HOSTED

T = TypeVar("T")
# What the caller sends to have exactly the model it named, or an error.
OPT_OUT_HEADER = "x-gateway-fallbacks"
# Failures of the upstream, not of the request. QuotaExceeded (the caller's own budget) is a RateLimited too,
# but it is raised before any upstream call, so it never reaches the chain.
TRIGGERS = (RateLimited, UpstreamError, UpstreamTimeout, ServiceUnavailable)


@dataclass(frozen=True)
class Target:
    model: str
    upstream: str = MISTRAL

    @classmethod
    def parse(cls, text: str) -> Target:
        prefix = f"{SELF_HOSTED}:"
        if text.startswith(prefix):
            return cls(text[len(prefix) :], SELF_HOSTED)
        return cls(text, MISTRAL)

    @property
    def label(self) -> str:
        return self.model if self.upstream == MISTRAL else f"{self.upstream}:{self.model}"


@dataclass(frozen=True)
class Served:
    """Who answered: the target, and why the ones before it did not (None: the requested model answered)."""

    target: Target
    requested: str
    reason: str | None = None

    @property
    def fell_back(self) -> bool:
        return self.reason is not None

    def headers(self) -> dict[str, str]:
        if not self.fell_back:
            return {}
        return {
            "X-Served-Model": self.target.model,
            "X-Served-Upstream": self.target.upstream,
            "X-Fallback-Reason": str(self.reason),
        }

    def log_fields(self) -> dict[str, str]:
        if not self.fell_back:
            return {}
        return {"fallback_from": self.requested, "served_by": self.target.label, "fallback_reason": str(self.reason)}


def chain(model: str, *, enabled: bool) -> list[Target]:
    """The requested model, then its fallbacks (when the operator set some and the caller allows them)."""
    targets = [Target(model)]
    if enabled:
        targets += [Target.parse(text) for text in settings().fallback_chains.get(model, ())]
        # A fallback never serves a model the caller's key may not use (key_policy.py).
        targets = targets[:1] + [target for target in targets[1:] if key_policy.allows(target.model)]
    return targets


def first_answer(model: str, ask: Callable[[Target], T], deadline: Deadline, *, enabled: bool) -> tuple[T, Served]:
    """`ask(target)` for each target in turn until one answers; the last failure when none does."""
    targets = chain(model, enabled=enabled)
    reason: str | None = None
    for position, target in enumerate(targets):
        try:
            return ask(target), Served(target, model, reason)
        except TRIGGERS as error:
            following = targets[position + 1] if position + 1 < len(targets) else None
            if following is None or deadline.remaining_ms() < MIN_ATTEMPT_MS:
                raise
            reason = _reason(error)
            observability.count_by_dimensions(
                observability.MODEL_FALLBACKS, {"from": target.label, "to": following.label, "reason": reason}
            )
            logger.warning(
                "model failed; falling back",
                extra={"from": target.label, "to": following.label, "reason": reason, "status": error.status},
            )
    raise AssertionError("unreachable: the chain always holds the requested model")


def _reason(error: GatewayError) -> str:
    if error.code == "circuit_open":
        return "circuit_open"
    return error.error_type  # rate_limited | upstream_error | upstream_timeout | service_unavailable
