"""`mistral-gateway keys ...` (also `make keys ARGS=...`): the caller keys of a deployed stack or of `make serve`.

    mistral-gateway keys --stack mistral-gateway create team-a --models mistral-small-latest --tokens-per-day 2000000
    mistral-gateway keys --local list
    mistral-gateway keys --local show team-a
    mistral-gateway keys --local limits team-a --tokens-per-minute 50000    # no option: print them
    mistral-gateway keys --local models team-a --set mistral-small-latest,codestral-latest
    mistral-gateway keys --local rotate team-a --grace 24h
    mistral-gateway keys --local revoke team-a
    mistral-gateway keys --local usage

A key is an API Gateway API key in the stack's usage plan (the plan's throttle and quota apply to it); its
budgets, the models it may use and when it stops working are one item of the quota table
(`limits#<key id>`), read by the gateway through its cached limits read (quota.py, key_policy.py). A KEY
argument is the key's id or its name. `--stack NAME` finds the usage plan and the quota table in the stack's
outputs (UsagePlanId, QuotaTableName) with your normal AWS credentials; `--local` finds `make serve`'s moto
through the state file it writes (usage_plan.py).

Rotation: `rotate` makes a new key (same name, same budgets and models) and gives the old one a grace period
(`--grace`, default 24h): its end is written to the old key's item (`key_expires_at`), after which the
gateway's functions refuse it (401) on every request, whatever API Gateway still has cached; any later `keys`
command also disables it in API Gateway. `revoke` disables a key at once and records its end the same way.

Every failure is one line on stderr and an exit code: 2 usage, 3 not found (stack, key, make serve), 4 AWS
credentials or access, 5 AWS throttling (after botocore's retries), 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any, TextIO

from gateway_dev.ops import quota as quota_tool
from gateway_dev.ops import spend
from gateway_dev.ops.keys import (
    EXIT_ACCESS,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_THROTTLED,
    EXIT_USAGE,
    Gateway,
    Key,
    KeysError,
    connect_local,
    connect_stack,
    create,
    describe,
    find,
    iso,
    keys_in_plan,
    revoke,
    rotate,
    sweep,
)
from gateway_dev.ops.spend import format_table

# The command, and what its callers read of an outcome: the exit codes and the one-line description of a failure.
__all__ = ["EXIT_ACCESS", "EXIT_FAILED", "EXIT_NOT_FOUND", "EXIT_THROTTLED", "EXIT_USAGE", "describe", "main"]

DEFAULT_GRACE = "24h"


# --- the command ---------------------------------------------------------------------------------------------


def parse_duration(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"a duration like 30m, 24h, 7d or 0 (got {text!r})")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def model_list(text: str) -> list[str]:
    models = [item.strip() for item in text.split(",") if item.strip()]
    if any(len(model) > 200 or not model.isprintable() for model in models):
        raise argparse.ArgumentTypeError("model names are printable, comma-separated")
    return models


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mistral-gateway keys", description=__doc__.split("\n")[0])
    where = top.add_mutually_exclusive_group()
    where.add_argument("--stack", help="a deployed stack's name (default: $STACK or mistral-gateway)")
    where.add_argument("--local", action="store_true", help="the keys of `make serve` (in its moto)")
    top.add_argument("--json", action="store_true", help="machine-readable output")
    commands = top.add_subparsers(dest="command", required=True)

    def with_limits(command: argparse.ArgumentParser) -> None:
        for name in quota_tool.LIMIT_FIELDS:
            command.add_argument(f"--{name.replace('_', '-')}", type=_non_negative, dest=name, default=None)

    create_ = commands.add_parser("create", help="a new key (its value is printed once)")
    create_.add_argument("name")
    create_.add_argument("--models", type=model_list, default=None, help="comma-separated; default: all")
    with_limits(create_)
    commands.add_parser("list", help="the keys in the usage plan")
    for name, text in (("show", "one key: limits, models, current usage"), ("revoke", "refuse a key from now on")):
        commands.add_parser(name, help=text).add_argument("key", help="id or name")
    rotate_ = commands.add_parser("rotate", help="a new value; the old one works for a grace period")
    rotate_.add_argument("key", help="id or name")
    grace = f"how long the old value keeps working (default {DEFAULT_GRACE}; 0: stops now)"
    rotate_.add_argument("--grace", type=parse_duration, default=parse_duration(DEFAULT_GRACE), help=grace)
    limits_ = commands.add_parser("limits", help="print or set a key's budgets (KEY may be `default`)")
    limits_.add_argument("key", help="id, name, or default")
    with_limits(limits_)
    limits_.add_argument("--unset", action="append", default=[], choices=quota_tool.LIMIT_FIELDS, help="no limit")
    models_ = commands.add_parser("models", help="print or set the models a key may use (empty: all)")
    models_.add_argument("key", help="id, name, or default")
    change = models_.add_mutually_exclusive_group()
    change.add_argument("--set", type=model_list, default=None, dest="set_models")
    change.add_argument("--add", type=model_list, default=None)
    change.add_argument("--remove", type=model_list, default=None)
    change.add_argument("--clear", action="store_true", help="every model the operator allows")
    usage = commands.add_parser("usage", help="requests, tokens, cost and savings per key")
    usage.add_argument("--key", default=None, help="one key (id or name)")
    usage.add_argument("--since", default=None, help="first day, YYYY-MM-DD (default: 30 days ago)")
    usage.add_argument("--by", choices=("key", "day", "model"), default="key")
    usage.add_argument("--format", choices=("table", "csv", "json"), default="table")
    usage.add_argument("--chart", default=None, help="draw spend and savings per key over time (FILE.html)")
    return top


def _non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"a whole number >= 0 (got {text!r})")
    return int(text)


def main(argv: list[str] | None = None, *, out: TextIO | None = None, gateway: Gateway | None = None) -> int:
    out = out or sys.stdout
    args = parser().parse_args(argv)
    try:
        if gateway is None:
            import os

            stack = args.stack or os.environ.get("STACK") or "mistral-gateway"
            gateway = connect_local() if args.local else connect_stack(stack)
        return run(gateway, args, out)
    except KeysError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except Exception as error:
        message, code = describe(error, gateway)
        print(f"error: {message}", file=sys.stderr)
        return code


def run(gateway: Gateway, args: argparse.Namespace, out: TextIO) -> int:
    keys = keys_in_plan(gateway)
    sweep(gateway, keys)
    now = gateway.clock()
    emit = _Emitter(out, args.json)
    if args.command == "create":
        limits = _limit_arguments(args)
        key, value = create(gateway, args.name, limits=limits, models=args.models, keys=keys)
        emit.record({**key.row(now), "key": value}, [
            f"created {key.name!r} (id {key.id}) in {gateway.label}",
            f"key: {value}",
            "(shown once: store it now; `keys rotate` makes a new one)",
        ])  # fmt: skip
    elif args.command == "list":
        rows = [key.row(now) for key in keys]
        emit.table(rows, ["id", "name", "status", "created", "expires_at", "models"])
    elif args.command == "show":
        key = find(gateway, args.key, keys)
        usage = quota_tool.current_usage(gateway.dynamodb, gateway.quota_table, key.id, now)
        emit.record(
            {**key.row(now), "usage": usage},
            [json.dumps({**key.row(now), "usage": usage}, indent=2, ensure_ascii=False)],
        )
    elif args.command == "revoke":
        key = find(gateway, args.key, keys)
        revoke(gateway, key)
        emit.record({"id": key.id, "name": key.name, "status": "revoked"}, [f"revoked {key.name!r} (id {key.id})"])
    elif args.command == "rotate":
        key = find(gateway, args.key, keys)
        new, value = rotate(gateway, key, args.grace)
        ends = iso(int(now) + args.grace)
        emit.record({**new.row(now), "key": value, "old_id": key.id, "old_expires_at": ends}, [
            f"rotated {key.name!r}: new id {new.id}; the old key ({key.id}) works until {ends}",
            f"key: {value}",
            "(shown once: store it now)",
        ])  # fmt: skip
    elif args.command == "limits":
        key_id = _policy_target(gateway, args.key, keys)
        changes = _limit_arguments(args)
        if changes or args.unset:
            quota_tool.update_item(gateway.dynamodb, gateway.quota_table, key_id, changes, remove=args.unset)
        policy = quota_tool.read_items(gateway.dynamodb, gateway.quota_table, [key_id]).get(key_id, {})
        limits = {name: policy[name] for name in quota_tool.LIMIT_FIELDS if name in policy}
        emit.record({"id": key_id, "limits": limits}, [f"{key_id}: {_describe_limits(limits)}"])
    elif args.command == "models":
        key_id = _policy_target(gateway, args.key, keys)
        if args.set_models is not None or args.clear:
            quota_tool.set_models(gateway.dynamodb, gateway.quota_table, key_id, args.set_models or [])
        elif args.add or args.remove:
            quota_tool.change_models(gateway.dynamodb, gateway.quota_table, key_id, add=args.add, remove=args.remove)
        policy = quota_tool.read_items(gateway.dynamodb, gateway.quota_table, [key_id]).get(key_id, {})
        models = policy.get(quota_tool.MODELS_FIELD, [])
        described = ", ".join(models) or "every model the operator allows"
        emit.record({"id": key_id, "models": models}, [f"{key_id}: {described}"])
    elif args.command == "usage":
        since = args.since or time.strftime("%Y-%m-%d", time.gmtime(gateway.clock() - 30 * 86_400))
        if not spend.is_day(since):
            raise KeysError(f"--since takes a day as YYYY-MM-DD (got {since!r})", 2)
        if args.chart and not args.chart.endswith((".html", ".htm")):
            raise KeysError("--chart writes an HTML page (FILE.html); PNG needs a plotting library", 2)
        key_ids = {find(gateway, args.key, keys).id} if args.key else None
        names = {key.id: key.name for key in keys}
        return spend.report(gateway.dynamodb, gateway.quota_table, names, key_ids, since, args, out)
    return 0


def _policy_target(gateway: Gateway, ref: str, keys: list[Key]) -> str:
    return "default" if ref == "default" else find(gateway, ref, keys).id


def _limit_arguments(args: argparse.Namespace) -> dict[str, int]:
    return {name: getattr(args, name) for name in quota_tool.LIMIT_FIELDS if getattr(args, name, None) is not None}


def _describe_limits(limits: dict[str, int]) -> str:
    return ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in limits.items()) or "no limits of its own"


class _Emitter:
    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json

    def record(self, data: dict[str, Any], lines: list[str]) -> None:
        print(json.dumps(data) if self.as_json else "\n".join(lines), file=self.out)

    def table(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
        if self.as_json:
            print(json.dumps(rows), file=self.out)
            return
        print(format_table(rows, columns), file=self.out)
