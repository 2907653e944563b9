"""`python -m gateway_dev.quota`: set, show or clear a caller key's budgets in the quota table.

    python -m gateway_dev.quota set <key id> --requests-per-minute 60 --tokens-per-day 2000000 --table <QuotaTableName>
    python -m gateway_dev.quota set default --tokens-per-minute 50000 --table ...   # every key without its own
    python -m gateway_dev.quota show <key id> --table ...                           # limits and current usage
    python -m gateway_dev.quota clear <key id> --table ...

The key id is what the gateway logs as `caller`: the API Gateway API key id. Against AWS it uses your
normal credentials and region; against `make moto`, set AWS_ENDPOINT_URL. The item it writes is plain
DynamoDB ({"pk": "limits#<key id>", "tokens_per_minute": N, ...}), so any tool can write it instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mistral_gateway.container import current
from mistral_gateway.quota import LIMIT_FIELDS, UNITS, WINDOWS, DynamoUsage, limits_key, usage_key


def _client() -> Any:
    import boto3

    return boto3.client("dynamodb")


def set_limits(table: str, key_id: str, limits: dict[str, int]) -> dict[str, int]:
    item: dict[str, Any] = {"pk": {"S": limits_key(key_id)}}
    item.update({name: {"N": str(value)} for name, value in limits.items()})
    _client().put_item(TableName=table, Item=item)
    return limits


def show(table: str, key_id: str) -> dict[str, Any]:
    """The key's limits and what it used in the current windows, read as the gateway reads them."""
    store = DynamoUsage(_client, table)
    now = current().clock()  # the gateway's own clock (a test may pin it)
    keys = {window: usage_key(key_id, window, now)[0] for window in WINDOWS}  # the very items the gateway counts in
    totals = store.totals(list(keys.values()))
    usage = {window: totals.get(key, dict.fromkeys(UNITS, 0)) for window, key in keys.items()}
    return {"key_id": key_id, "limits": store.limits(limits_key(key_id)) or {}, "usage": usage}


def clear(table: str, key_id: str) -> None:
    _client().delete_item(TableName=table, Key={"pk": {"S": limits_key(key_id)}})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway_dev.quota", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("set", "show", "clear"):
        command = commands.add_parser(name)
        command.add_argument("key_id", help="the API key id (as logged in `caller`), or `default`")
        command.add_argument("--table", required=True, help="the stack's QuotaTableName output")
        if name == "set":
            for field in LIMIT_FIELDS:
                command.add_argument(f"--{field.replace('_', '-')}", type=int, dest=field, default=None)
    args = parser.parse_args(argv)
    if args.command == "set":
        limits = {field: getattr(args, field) for field in LIMIT_FIELDS if getattr(args, field) is not None}
        if not limits or any(value < 0 for value in limits.values()):
            parser.error("give at least one non-negative limit, e.g. --tokens-per-minute 50000")
        print(json.dumps({"key_id": args.key_id, "limits": set_limits(args.table, args.key_id, limits)}))
    elif args.command == "show":
        print(json.dumps(show(args.table, args.key_id), indent=2))
    else:
        clear(args.table, args.key_id)
        print(json.dumps({"key_id": args.key_id, "limits": {}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
