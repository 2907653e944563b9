"""A cold Lambda container: imports the handler module as Lambda's bootstrap does and answers one API Gateway event.
Timed to the response (`total_ms`) and to the end of the work after it, a miss's store (`billed_ms`).

argv: app.py, event file, memory MB, watched modules (comma-separated), expected X-Cache, report file.
An event whose body holds `@@fresh@@` gets a question no process asked before (a miss on every run)."""

import time

T0 = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from gateway_dev.bench.children.common import (  # noqa: E402
    Context,
    fail,
    load_app,
    peak_rss_kb,
    response_headers,
    write_report,
)


def main() -> None:
    app_path, event_path, memory_mb, watched, expected, report_path = sys.argv[1:7]
    with open(event_path) as source:
        event = json.load(source)
    event["body"] = event["body"].replace("@@fresh@@", f"{os.getpid()}-{time.time_ns()}")
    app = load_app(app_path)
    from mistral_gateway.platform import after_response

    t1 = time.perf_counter()
    # As Lambda's post-response extension has it: the response first, then a miss's store (after_response.py).
    with after_response.collected() as work:
        result = app.lambda_handler(event, Context(int(memory_mb)))
    t2 = time.perf_counter()
    after_response.run(work)
    t3 = time.perf_counter()
    status, cache = result.get("statusCode"), response_headers(result).get("x-cache")
    if status != 200 or cache != expected:
        fail(report_path, f"cold {expected} answered {status} {cache}: {str(result.get('body'))[:300]}")
    report = {
        "import_ms": (t1 - T0) * 1000,
        "total_ms": (t2 - T0) * 1000,
        "billed_ms": (t3 - T0) * 1000,
        "status": status,
        "cache": cache,
        "peak_rss_kb": peak_rss_kb(),
        "loaded": sorted(name for name in watched.split(",") if name in sys.modules),
    }
    write_report(report_path, report)


if __name__ == "__main__":
    main()
