"""`python -X importtime` of one cold request, read: cumulative ms of the costliest imports."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

# The benchmark's own packages: `python -m gateway_dev.bench.children.x` imports them before the handler.
OWN = ("gateway_dev",)


@dataclass(frozen=True)
class ImportProfile:
    top_level: list[tuple[str, float]]  # imported by the handler module or a function, by root package
    inside: list[tuple[str, float]]  # one level down: what those imports spend their time on


def import_profile(stderr: str, top: int = 6) -> ImportProfile:
    by_depth: dict[int, dict[str, float]] = {0: {}, 1: {}}
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)", line)
        depth = len(match.group(2)) // 2 if match else -1
        if match and depth in by_depth and not_stdlib(match.group(3)):
            name = match.group(3).split(".")[0] if depth == 0 else match.group(3)
            by_depth[depth][name] = by_depth[depth].get(name, 0.0) + int(match.group(1)) / 1000

    def costliest(costs: dict[str, float]) -> list[tuple[str, float]]:
        return sorted(costs.items(), key=lambda item: -item[1])[:top]

    return ImportProfile(costliest(by_depth[0]), costliest(by_depth[1]))


def not_stdlib(module: str) -> bool:
    """Leaves out the standard library, interpreter start-up (site, encodings, editable-install finders) and the
    benchmark's own packages."""
    root = module.split(".")[0]
    return root not in sys.stdlib_module_names and not root.startswith("_") and root not in OWN
