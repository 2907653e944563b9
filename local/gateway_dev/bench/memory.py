"""Figure 5: the peak RSS of one fresh container after a mixed load."""

from __future__ import annotations

from typing import Any

from gateway_dev.bench.settings import APP_PATH, MB
from gateway_dev.bench.stack import Stack, child_command, read_reports, run_child


def mixed_load(stack: Stack, requests: int) -> dict[str, Any]:
    report_path = stack.paths.scratch / "mixed.jsonl"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.unlink(missing_ok=True)
    args = (str(APP_PATH), str(requests), stack.nonce, str(stack.memory_mb), str(report_path))
    run_child(child_command("mixed_load", *args), stack.child_env())
    (report,) = read_reports(report_path)
    failed = {label: n for label, n in report["counts"].items() if " 200 " not in label}
    if failed:
        raise RuntimeError(f"mixed load had failures: {failed}")
    return report


def rss_mb(report: dict[str, Any]) -> float:
    return float(report["peak_rss_kb"]) * 1024 / MB
