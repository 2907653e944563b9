"""`mistral-gateway keys usage`: spend per key (filled in below)."""

from __future__ import annotations

import argparse
from typing import Any, TextIO


def report(gateway: Any, keys: list[Any], args: argparse.Namespace, out: TextIO) -> int:
    raise NotImplementedError
