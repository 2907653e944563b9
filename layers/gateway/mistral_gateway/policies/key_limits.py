"""A caller key's limits as the budgets read them, the windows they count in, and the RateLimit headers they give.

Limits live in the quota table, per caller key id (`limits#<key id>`, or `limits#default` for every caller
without its own item); usage in one item per caller and window (`usage#<key id>#minute#<window start>`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from mistral_gateway.policies.usage_store import UNITS

WINDOWS = {"minute": 60, "day": 86_400}


@dataclass(frozen=True)
class Limits:
    values: dict[str, int]  # e.g. {"tokens_per_minute": 10000}
    models: frozenset[str] = frozenset()  # the models the key may use; empty: all the operator allows
    key_expires_at: int | None = None  # epoch seconds after which the key is refused (rotation, revocation)

    def allows(self, model: str) -> bool:
        return not self.models or model in self.models

    def expired(self, now: float) -> bool:
        return self.key_expires_at is not None and now >= self.key_expires_at

    def of(self, unit: str, window: str) -> int | None:
        return self.values.get(f"{unit}_per_{window}")

    def windows(self) -> list[str]:
        return [w for w in WINDOWS if any(self.of(unit, w) is not None for unit in UNITS)]


class Budget(NamedTuple):
    """One limit of one window, and how much of it is used: what the RateLimit headers describe."""

    unit: str  # requests | tokens
    window: str  # minute | day
    limit: int
    used: int
    reset_in: float  # seconds until the window starts again

    @property
    def name(self) -> str:
        return f"{self.unit}_per_{self.window}"


def limits_key(caller: str) -> str:
    """The item holding a key's limits (`default` applies to every key without its own)."""
    return f"limits#{caller}"


def usage_key(caller: str, window: str, now: float) -> tuple[str, float]:
    """The item counting a key's usage in the current window, and the seconds until the window ends."""
    length = WINDOWS[window]
    start = int(now // length * length)
    return f"usage#{caller}#{window}#{start}", start + length - now


def merged(own: Limits, default: Limits | None) -> Limits:
    """A key's own item over the `default` item: budgets and models each from the key's item when it has any."""
    if default is None:
        return own
    return Limits(own.values or default.values, own.models or default.models, own.key_expires_at)


def tokens_limited(limits: Limits) -> bool:
    return any(limits.of("tokens", window) is not None for window in WINDOWS)


def zero() -> dict[str, int]:
    return dict.fromkeys(UNITS, 0)


def budgets_of(limits: Limits, window: str, used: dict[str, int], reset_in: float) -> list[Budget]:
    return [
        Budget(unit, window, limit, used[unit], reset_in)
        for unit in UNITS
        if (limit := limits.of(unit, window)) is not None
    ]


def rate_limit_headers(budgets: list[Budget]) -> dict[str, str]:
    """IETF RateLimit headers for the tightest budget (least remaining, as a share of its limit)."""
    if not budgets:
        return {}
    tightest = min(budgets, key=lambda b: (max(0, b.limit - b.used) / max(1, b.limit), -b.reset_in))
    return {
        "RateLimit-Limit": str(tightest.limit),
        "RateLimit-Remaining": str(max(0, tightest.limit - tightest.used)),
        "RateLimit-Reset": str(math.ceil(tightest.reset_in)),
        "RateLimit-Policy": ", ".join(f"{b.limit};w={WINDOWS[b.window]};name={b.name}" for b in budgets),
    }
