"""The floor of a cold start: the least any Lambda reading the cache table does (boto3, a client, one GetItem).

argv: table, key, report file."""

import time

T0 = time.perf_counter()

import sys  # noqa: E402

import boto3  # noqa: E402

from gateway_dev.bench.children.common import fail, peak_rss_kb, write_report  # noqa: E402


def main() -> None:
    table, key, report_path = sys.argv[1:4]
    client = boto3.client("dynamodb")
    item = client.get_item(TableName=table, Key={"pk": {"S": key}}).get("Item")
    t1 = time.perf_counter()
    if item is None:
        fail(report_path, "the floor's GetItem found no item")
    write_report(report_path, {"total_ms": (t1 - T0) * 1000, "found": True, "peak_rss_kb": peak_rss_kb()})


if __name__ == "__main__":
    main()
