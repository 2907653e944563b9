"""`python -m gateway_dev.ops.quota`: set, show or clear a caller key's budgets in the quota table.

`mistral-gateway keys limits|models` does the same through these very functions, finding the table itself.

    python -m gateway_dev.ops.quota set <key id> --requests-per-minute 60 --tokens-per-day 2000000 --table <Table>
    python -m gateway_dev.ops.quota set default --tokens-per-minute 50000 --table ...   # every key without its own
    python -m gateway_dev.ops.quota show <key id> --table ...                           # limits and current usage
    python -m gateway_dev.ops.quota clear <key id> --table ...

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
from mistral_gateway.policies.key_limits import WINDOWS, limits_key, usage_key
from mistral_gateway.policies.usage_store import KEY_EXPIRES_FIELD, LIMIT_FIELDS, MODELS_FIELD, UNITS, DynamoUsage

__all__ = ["KEY_EXPIRES_FIELD", "LIMIT_FIELDS", "MODELS_FIELD"]


def _client() -> Any:
    import boto3

    return boto3.client("dynamodb")


# The one code path that writes and reads a key's item (`mistral-gateway keys` and this tool): updates name
# only the attributes they change, so budgets, models and a key's end never overwrite one another.


def update_item(
    client: Any, table: str, key_id: str, values: dict[str, int], *, remove: list[str] | None = None,
    models: list[str] | None = None, expires_at: int | None = None,
) -> None:  # fmt: skip
    """Set (or remove) limit fields of `limits#<key id>`, and optionally its models and its end."""
    sets = dict(values)
    if expires_at is not None:
        sets[KEY_EXPIRES_FIELD] = expires_at
    names = {f"#f{n}": name for n, name in enumerate([*sets, *(remove or [])])}
    by_name = {name: alias for alias, name in names.items()}
    attribute_values: dict[str, Any] = {f":v{n}": {"N": str(value)} for n, value in enumerate(sets.values())}
    clauses = [f"{by_name[name]} = :v{n}" for n, name in enumerate(sets)]
    if models:
        names["#models"] = MODELS_FIELD
        attribute_values[":models"] = {"SS": sorted(set(models))}
        clauses.append("#models = :models")
    expression = ("SET " + ", ".join(clauses)) if clauses else ""
    if remove:
        expression += " REMOVE " + ", ".join(by_name[name] for name in remove)
    if not expression:
        return
    arguments: dict[str, Any] = {
        "TableName": table,
        "Key": {"pk": {"S": limits_key(key_id)}},
        "UpdateExpression": expression.strip(),
        "ExpressionAttributeNames": names,
    }
    if attribute_values:
        arguments["ExpressionAttributeValues"] = attribute_values
    client.update_item(**arguments)


def set_models(client: Any, table: str, key_id: str, models: list[str]) -> None:
    """The models the key may use (empty: every model the operator allows)."""
    if models:
        update_item(client, table, key_id, {}, models=models)
    else:
        client.update_item(
            TableName=table,
            Key={"pk": {"S": limits_key(key_id)}},
            UpdateExpression="REMOVE #models",
            ExpressionAttributeNames={"#models": MODELS_FIELD},
        )


def change_models(
    client: Any, table: str, key_id: str, *, add: list[str] | None = None, remove: list[str] | None = None
) -> None:
    """Add or remove models atomically (two operators at once lose neither's change)."""
    action, models = ("ADD", add) if add else ("DELETE", remove)
    if models:
        client.update_item(
            TableName=table,
            Key={"pk": {"S": limits_key(key_id)}},
            UpdateExpression=f"{action} #models :models",
            ExpressionAttributeNames={"#models": MODELS_FIELD},
            ExpressionAttributeValues={":models": {"SS": sorted(set(models))}},
        )


def read_items(client: Any, table: str, key_ids: list[str]) -> dict[str, dict[str, Any]]:
    """{key id: its item's limits, models and end}, as the gateway reads them (keys without an item absent)."""
    keys = {key_id: limits_key(key_id) for key_id in key_ids}
    items = DynamoUsage(lambda: client, table).limits(list(keys.values()))
    return {key_id: items[key] for key_id, key in keys.items() if key in items}


def current_usage(client: Any, table: str, key_id: str, now: float) -> dict[str, dict[str, int]]:
    """What the key used in the current minute and day: the very items the gateway counts its budgets in."""
    keys = {window: usage_key(key_id, window, now)[0] for window in WINDOWS}
    totals = DynamoUsage(lambda: client, table).totals(list(keys.values()))
    return {window: totals.get(key, dict.fromkeys(UNITS, 0)) for window, key in keys.items()}


def set_limits(table: str, key_id: str, limits: dict[str, int]) -> dict[str, int]:
    update_item(_client(), table, key_id, limits)
    return limits


def show(table: str, key_id: str) -> dict[str, Any]:
    """The key's limits and what it used in the current windows, read as the gateway reads them."""
    now = current().clock()  # the gateway's own clock (a test may pin it)
    item = read_items(_client(), table, [key_id]).get(key_id, {})
    limits = {name: item[name] for name in LIMIT_FIELDS if name in item}
    return {"key_id": key_id, "limits": limits, "usage": current_usage(_client(), table, key_id, now)}


def clear(table: str, key_id: str) -> None:
    """Remove the key's budgets (its models and its end, if any, stay)."""
    update_item(_client(), table, key_id, {}, remove=list(LIMIT_FIELDS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway_dev.ops.quota", description=__doc__.split("\n")[0])
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
