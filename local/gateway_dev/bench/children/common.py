"""What the child programs share: their peak memory, Lambda's way of loading a handler, and their report."""

from __future__ import annotations

import importlib.util
import json
import sys
from types import ModuleType
from typing import Any


def peak_rss_kb() -> int:
    """Peak RSS of this process in KB. Linux keeps ru_maxrss across exec, so a child spawned from a large process
    would report the parent's size: VmHWM is the peak of the child's own address space. ru_maxrss elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def load_app(path: str) -> ModuleType:
    """Import the handler module from its file, as Lambda's bootstrap does (no dev tooling)."""
    spec = importlib.util.spec_from_file_location("app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["app"] = module
    spec.loader.exec_module(module)
    return module


class Context:
    """The Lambda context object the handler is given."""

    function_name = "ApiFunction"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ApiFunction"
    aws_request_id = "bench"

    def __init__(self, memory_mb: int) -> None:
        self.memory_limit_in_mb = memory_mb

    def get_remaining_time_in_millis(self) -> int:
        return 29000


def response_headers(result: dict[str, Any]) -> dict[str, str]:
    headers = {k.lower(): str(v[-1]) for k, v in (result.get("multiValueHeaders") or {}).items()}
    headers.update({k.lower(): str(v) for k, v in (result.get("headers") or {}).items()})
    return headers


def write_report(path: str, report: dict[str, Any]) -> None:
    """One JSON line per process, appended: pyperf sends a command's stdout to /dev/null."""
    with open(path, "a") as out:
        out.write(json.dumps(report) + "\n")


def fail(path: str, message: str) -> None:
    write_report(path, {"error": message})
    print(message, file=sys.stderr)
    raise SystemExit(1)
