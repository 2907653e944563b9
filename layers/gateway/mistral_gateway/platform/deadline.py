"""How much time one request may still spend: the Lambda's remaining time and our own total deadline."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

# Time kept back to build and return our own answer after the last upstream attempt.
RESPONSE_MARGIN_MS = 400


@dataclass(frozen=True)
class Deadline:
    expires_at: float  # time.monotonic() seconds
    # The longest one upstream attempt may take (None: UPSTREAM_TIMEOUT_MS). The streaming function lifts it
    # to its whole deadline: a long answer asked for without streaming must not be cut after 20 s.
    attempt_ceiling_ms: float | None = None

    @classmethod
    def start(cls, total_ms: int, lambda_context: Any = None, *, attempt_ceiling_ms: float | None = None) -> Deadline:
        """`total_ms` from now, or less when the Lambda invocation ends sooner."""
        allowed_ms = float(total_ms)
        remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
        if callable(remaining):
            with contextlib.suppress(TypeError, ValueError):
                allowed_ms = min(allowed_ms, float(remaining()))
        return cls(time.monotonic() + max(0.0, allowed_ms - RESPONSE_MARGIN_MS) / 1000, attempt_ceiling_ms)

    def remaining_ms(self) -> float:
        return max(0.0, (self.expires_at - time.monotonic()) * 1000)
