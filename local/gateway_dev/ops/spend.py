"""`mistral-gateway keys usage`: requests, cache hits, tokens, cost and what the cache saved, per caller key.

Reads the counters the spend function adds per key, day and model to the quota table from the "request served" lines
(mistral_gateway/policies/spend.py, spend_batches.py), so the report agrees with the lines to the token. The read is
one Scan of the quota table filtered to the `spend#` items (the table holds only limits, short-lived budget windows
and these: a few thousand items for ten keys over a year, cents per report).

    keys usage [--key K] [--since YYYY-MM-DD] [--by key|day|model] [--format table|csv|json] [--chart FILE.html]

`--chart FILE.html` draws spend and savings per key over time as a self-contained page (inline SVG, no
dependency); PNG is not offered (it would need a plotting library in the environment).
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import json
import time
from collections import defaultdict
from typing import Any, TextIO

from gateway_dev.runner import spend_delivery
from mistral_gateway.policies.spend import COUNTERS, NANO, PREFIX

COLUMNS = (
    "requests",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "saved_tokens",
    "saved_usd",
    "fallbacks",
    "errors",
    "rate_limited",
)


def read_counters(dynamodb: Any, table: str, key_ids: set[str] | None, since: str) -> list[dict[str, Any]]:
    """Every spend item (key, day, model, counters) from `since` on, of `key_ids` (None: every key)."""
    spend_delivery.flush()  # locally: the served lines written so far are applied first (spend_delivery.py)
    rows = []
    arguments: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "begins_with(pk, :prefix) AND #day >= :since",
        "ExpressionAttributeNames": {"#day": "day"},
        "ExpressionAttributeValues": {":prefix": {"S": PREFIX}, ":since": {"S": since}},
        "ConsistentRead": True,
    }
    for page in dynamodb.get_paginator("scan").paginate(**arguments):
        for item in page.get("Items", []):
            key_id = item.get("key_id", {}).get("S", "")
            if key_ids is not None and key_id not in key_ids:
                continue
            row: dict[str, Any] = {
                "key_id": key_id,
                "day": item.get("day", {}).get("S", ""),
                "model": item.get("model", {}).get("S", ""),
            }
            row.update({name: int(item.get(name, {}).get("N", 0)) for name in COUNTERS})
            rows.append(row)
    return rows


def aggregate(rows: list[dict[str, Any]], names: dict[str, str], by: str) -> list[dict[str, Any]]:
    """Rows per key (and per day or model with --by day|model), dollars from nano-dollars."""
    totals: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for row in rows:
        group: tuple[str, ...] = (row["key_id"],) if by == "key" else (row["key_id"], row[by])
        for name in COUNTERS:
            totals[group][name] += row[name]
    result = []
    for group_key, counts in sorted(totals.items()):
        line: dict[str, Any] = {"key_id": group_key[0], "name": names.get(group_key[0], "")}
        if by != "key":
            line[by] = group_key[-1]
        line.update({name: counts[name] for name in COUNTERS if not name.endswith("_nusd")})
        line["cost_usd"] = round(counts["cost_nusd"] / NANO, 9)
        line["saved_usd"] = round(counts["saved_nusd"] / NANO, 9)
        result.append(line)
    return result


def render(lines: list[dict[str, Any]], by: str, fmt: str) -> str:
    columns = ["key_id", "name", *([by] if by != "key" else []), *COLUMNS]
    if fmt == "json":
        return json.dumps([{column: line.get(column) for column in columns} for line in lines], indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(
            {**line, "cost_usd": f"{line['cost_usd']:.9f}", "saved_usd": f"{line['saved_usd']:.9f}"} for line in lines
        )
        return buffer.getvalue().rstrip("\n")
    shown = [{**line, "cost_usd": f"{line['cost_usd']:.6f}", "saved_usd": f"{line['saved_usd']:.6f}"} for line in lines]
    return format_table(shown, columns) if lines else "no usage recorded in this period"


def chart_html(rows: list[dict[str, Any]], names: dict[str, str]) -> str:
    """Cost and cost saved per key and day, as a page with one inline SVG bar chart per key."""
    per_key: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for row in rows:
        cell = per_key[row["key_id"]][row["day"]]
        cell[0] += row["cost_nusd"]
        cell[1] += row["saved_nusd"]
    days = sorted({row["day"] for row in rows})
    peak = max([max(cell) for key in per_key.values() for cell in key.values()] + [1])
    width, height, bar = max(300, 40 * len(days) + 60), 200, 14
    parts = [
        "<!doctype html><meta charset=utf-8><title>Mistral gateway: spend per key</title>",
        "<style>body{font-family:sans-serif}svg{border:1px solid #ccc;margin:4px 0 16px}</style>",
        "<h1>Spend and savings per key</h1><p>blue: cost (USD), green: saved by the cache (USD)</p>",
    ]
    for key_id, by_day in sorted(per_key.items()):
        label = html.escape(f"{names.get(key_id, '')} ({key_id})")
        total = sum(cell[0] for cell in by_day.values()) / NANO
        saved = sum(cell[1] for cell in by_day.values()) / NANO
        parts.append(f"<h2>{label}: cost ${total:.6f}, saved ${saved:.6f}</h2>")
        parts.append(f'<svg width="{width}" height="{height + 30}" role="img" aria-label="{label}">')
        for n, day in enumerate(days):
            cost, saved_day = by_day.get(day, [0, 0])
            x = 40 + n * 40
            for offset, value, colour, what in ((0, cost, "#3b6fd8", "cost"), (bar, saved_day, "#2e9d57", "saved")):
                h = round(height * value / peak)
                title = html.escape(f"{day} {what} ${value / NANO:.6f}")
                parts.append(
                    f'<rect x="{x + offset}" y="{height - h}" width="{bar}" height="{h}" fill="{colour}">'
                    f"<title>{title}</title></rect>"
                )
            parts.append(f'<text x="{x}" y="{height + 20}" font-size="9">{html.escape(day[5:])}</text>')
        parts.append("</svg>")
    return "\n".join(parts) + "\n"


def report(
    dynamodb: Any,
    table: str,
    names: dict[str, str],
    key_ids: set[str] | None,
    since: str,
    args: argparse.Namespace,
    out: TextIO,
) -> int:
    """`keys usage` once keys_cli.py has checked its arguments: the counters since `since`, of `key_ids` (None: all)."""
    rows = read_counters(dynamodb, table, key_ids, since)
    if args.chart:
        with open(args.chart, "w", encoding="utf-8") as page:
            page.write(chart_html(rows, names))
    print(render(aggregate(rows, names, args.by), args.by, "json" if args.json else args.format), file=out)
    return 0


def is_day(text: str) -> bool:
    try:
        time.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, list):
            return ",".join(str(item) for item in value) or "-"
        return "-" if value is None else str(value)

    cells = [[cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column), *(len(line[n]) for line in cells)]) for n, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(widths[n]) for n, column in enumerate(columns))]
    lines += ["  ".join(value.ljust(widths[n]) for n, value in enumerate(line)) for line in cells]
    return "\n".join(line.rstrip() for line in lines)
