"""One lock around some methods of a class: how the local runner gives emulated services the one-at-a-time
guarantees the real ones have (see resources.make_moto_writes_atomic, bridge.serialize_metric_flushes)."""

from __future__ import annotations

import functools
import threading
from typing import Any


def serialize_methods(cls: type, names: tuple[str, ...]) -> None:
    """Wrap `names` of `cls` so that calls to any of them run one at a time (idempotent)."""
    marker = f"_serialized_{'_'.join(names)}"
    if getattr(cls, marker, False):
        return
    lock = threading.RLock()
    for name in names:
        method = getattr(cls, name)

        def locked(*args: Any, _method: Any = method, **kwargs: Any) -> Any:
            with lock:
                return _method(*args, **kwargs)

        setattr(cls, name, functools.wraps(method)(locked))
    setattr(cls, marker, True)
