"""Median and p95 of a sample, from the standard library's `statistics`, and how a run prints them."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Stats:
    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        if len(self.samples) < 2:
            return self.samples[0]
        return statistics.quantiles(self.samples, n=20, method="inclusive")[18]

    def summary(self) -> dict[str, Any]:
        return {"median": self.median, "p95": self.p95, "n": len(self.samples), "samples": list(self.samples)}


def stats(samples: Iterable[float]) -> Stats:
    return Stats(tuple(samples))


def ms(value: float) -> str:
    return f"{value:,.1f} ms" if abs(value) < 100 else f"{value:,.0f} ms"


def spread(values: Stats) -> str:
    return f"{ms(values.median)} (p95 {ms(values.p95)})"
