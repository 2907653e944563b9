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
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from gateway_dev.ops import quota as quota_tool
from gateway_dev.ops import spend
from gateway_dev.ops.spend import format_table

EXIT_USAGE, EXIT_NOT_FOUND, EXIT_ACCESS, EXIT_THROTTLED, EXIT_FAILED = 2, 3, 4, 5, 1
DEFAULT_GRACE = "24h"
MAX_NAME = 128
KEY_PREFIX = "mgw_"
THROTTLED = {"TooManyRequestsException", "ThrottlingException", "Throttling", "ProvisionedThroughputExceededException"}
DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException",
          "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "InvalidSignatureException"}  # fmt: skip


class KeysError(Exception):
    """A failure the operator can act on: one line, an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Gateway:
    """Where a gateway's keys live: its usage plan and its quota table."""

    apigateway: Any
    dynamodb: Any
    usage_plan_id: str
    quota_table: str
    url: str
    label: str
    clock: Callable[[], float] = time.time


def _config() -> Any:
    from botocore.config import Config

    return Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=5, read_timeout=30)


def connect_stack(name: str, session: Any = None) -> Gateway:
    """The deployed stack's usage plan and quota table, from its outputs."""
    import boto3

    session = session or boto3.session.Session()
    region = session.region_name or "(no region: set AWS_REGION)"
    try:
        stacks = session.client("cloudformation", config=_config()).describe_stacks(StackName=name)["Stacks"]
    except Exception as error:
        if _code(error) == "ValidationError":
            message = f"no stack named {name!r} in {region} (check --stack and AWS_REGION)"
            raise KeysError(message, EXIT_NOT_FOUND) from None
        raise
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stacks[0].get("Outputs", [])}
    missing = [key for key in ("UsagePlanId", "QuotaTableName") if key not in outputs]
    if missing:
        raise KeysError(
            f"stack {name!r} has no {' or '.join(missing)} output: is it a Mistral gateway stack (template.yaml)?",
            EXIT_NOT_FOUND,
        )
    return Gateway(
        session.client("apigateway", config=_config()),
        session.client("dynamodb", config=_config()),
        outputs["UsagePlanId"],
        outputs["QuotaTableName"],
        outputs.get("ApiUrl", ""),
        f"stack {name} ({region})",
    )


def connect_local(path: Path | None = None) -> Gateway:
    """`make serve`'s usage plan and quota table in its moto, from the state file it writes."""
    import boto3

    from gateway_dev.cloud.usage_plan import LocalApi, state_path

    path = path or state_path()
    try:
        api = LocalApi.load(path)
    except (OSError, ValueError, TypeError):
        message = f"no make serve running (no state in {path}): start `make serve` first"
        raise KeysError(message, EXIT_NOT_FOUND) from None
    session = boto3.session.Session(
        aws_access_key_id="local", aws_secret_access_key="local", region_name=api.region or "us-east-1"
    )

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=api.endpoint_url, config=_config())

    return Gateway(
        client("apigateway"), client("dynamodb"), api.usage_plan_id, api.quota_table, api.url, f"make serve {api.url}"
    )


# --- the keys -----------------------------------------------------------------------------------------------


@dataclass
class Key:
    id: str
    name: str
    enabled: bool
    created: str
    policy: dict[str, Any] = field(default_factory=dict)  # the quota-table item's fields (limits, models, end)

    @property
    def expires_at(self) -> int | None:
        value = self.policy.get(quota_tool.KEY_EXPIRES_FIELD)
        return int(value) if value is not None else None

    def status(self, now: float) -> str:
        if not self.enabled or (self.expires_at is not None and now >= self.expires_at):
            return "revoked"
        return "expiring" if self.expires_at is not None else "active"

    def row(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status(now),
            "created": self.created,
            "expires_at": _iso(self.expires_at) if self.expires_at is not None else None,
            "limits": {name: self.policy[name] for name in quota_tool.LIMIT_FIELDS if name in self.policy},
            "models": self.policy.get(quota_tool.MODELS_FIELD, []),
        }


def keys_in_plan(gateway: Gateway) -> list[Key]:
    """Every API key in the usage plan, with its quota-table item, oldest first."""
    paginate = gateway.apigateway.get_paginator
    in_plan = {
        item["id"]: item.get("name", "")
        for page in paginate("get_usage_plan_keys").paginate(usagePlanId=gateway.usage_plan_id)
        for item in page.get("items", [])
    }
    keys = []
    for page in paginate("get_api_keys").paginate():
        for item in page.get("items", []):
            if item["id"] in in_plan:
                created = item.get("createdDate")
                keys.append(Key(item["id"], item.get("name", ""), bool(item.get("enabled")), _iso_of(created), {}))
    policies = quota_tool.read_items(gateway.dynamodb, gateway.quota_table, [key.id for key in keys])
    for key in keys:
        key.policy = policies.get(key.id, {})
    return sorted(keys, key=lambda key: (key.created, key.id))


def find(gateway: Gateway, ref: str, keys: list[Key] | None = None) -> Key:
    """The key whose id is `ref`, else the one (still working) named `ref`."""
    keys = keys if keys is not None else keys_in_plan(gateway)
    by_id = [key for key in keys if key.id == ref]
    if by_id:
        return by_id[0]
    now = gateway.clock()
    named = [key for key in keys if key.name == ref]
    working = [key for key in named if key.status(now) == "active"] or named
    if len(working) == 1:
        return working[0]
    if not working:
        raise KeysError(f"no key {ref!r} in {gateway.label} (by id or name; `keys list` shows them)", EXIT_NOT_FOUND)
    ids = ", ".join(key.id for key in working)
    raise KeysError(f"several keys are named {ref!r} ({ids}): give the id", EXIT_USAGE)


def sweep(gateway: Gateway, keys: list[Key]) -> None:
    """Disable in API Gateway the keys whose end (rotation grace, revocation) has passed."""
    now = gateway.clock()
    for key in keys:
        if key.enabled and key.expires_at is not None and now >= key.expires_at:
            _set_enabled(gateway, key.id, False)
            key.enabled = False


def check_name(name: str) -> str:
    stripped = name.strip()
    if not stripped or len(stripped) > MAX_NAME or not stripped.isprintable():
        raise KeysError(f"a key name is 1-{MAX_NAME} printable characters (got {name!r})", EXIT_USAGE)
    if stripped == "default":
        raise KeysError("'default' names the budgets of every key without its own: pick another name", EXIT_USAGE)
    return stripped


def create(
    gateway: Gateway, name: str, *, limits: dict[str, int] | None = None, models: list[str] | None = None,
    keys: list[Key] | None = None,
) -> tuple[Key, str]:  # fmt: skip
    """A new key in the plan (with its budgets and models, if given): the key and its value (shown once).
    Nothing is left half-made: if a later step fails, the key is deleted again."""
    name = check_name(name)
    now = gateway.clock()
    existing = [key for key in (keys if keys is not None else keys_in_plan(gateway)) if key.name == name]
    if any(key.status(now) == "active" for key in existing):
        raise KeysError(f"a key named {name!r} already exists: rotate it, or pick another name", EXIT_USAGE)
    value = KEY_PREFIX + secrets.token_urlsafe(32)
    made = gateway.apigateway.create_api_key(
        name=name, value=value, enabled=True, description="caller key of the Mistral gateway (mistral-gateway keys)"
    )
    try:
        gateway.apigateway.create_usage_plan_key(usagePlanId=gateway.usage_plan_id, keyId=made["id"], keyType="API_KEY")
        try:
            if limits or models:
                quota_tool.update_item(gateway.dynamodb, gateway.quota_table, made["id"], limits or {}, models=models)
        except BaseException:
            gateway.apigateway.delete_usage_plan_key(usagePlanId=gateway.usage_plan_id, keyId=made["id"])
            raise
    except BaseException:
        gateway.apigateway.delete_api_key(apiKey=made["id"])
        raise
    policy: dict[str, Any] = dict(limits or {})
    if models:
        policy[quota_tool.MODELS_FIELD] = sorted(models)
    return Key(made["id"], name, True, _iso_of(made.get("createdDate")), policy), value


def revoke(gateway: Gateway, key: Key) -> None:
    """Refused from now on: disabled in API Gateway, and its end recorded for the functions (which refuse it
    even while API Gateway still holds a cached authorization)."""
    quota_tool.update_item(gateway.dynamodb, gateway.quota_table, key.id, {}, expires_at=int(gateway.clock()))
    _set_enabled(gateway, key.id, False)


def rotate(gateway: Gateway, key: Key, grace_seconds: int) -> tuple[Key, str]:
    """A new key with the old one's name, budgets and models; the old one works `grace_seconds` more."""
    if key.status(gateway.clock()) == "revoked":
        raise KeysError(f"key {key.id} is revoked: create a new one instead", EXIT_USAGE)
    limits = {name: int(key.policy[name]) for name in quota_tool.LIMIT_FIELDS if name in key.policy}
    models = list(key.policy.get(quota_tool.MODELS_FIELD, []))
    value = KEY_PREFIX + secrets.token_urlsafe(32)
    made = gateway.apigateway.create_api_key(
        name=key.name, value=value, enabled=True, description=f"rotated from {key.id} (mistral-gateway keys)"
    )
    try:
        gateway.apigateway.create_usage_plan_key(usagePlanId=gateway.usage_plan_id, keyId=made["id"], keyType="API_KEY")
        try:
            if limits or models:
                quota_tool.update_item(gateway.dynamodb, gateway.quota_table, made["id"], limits, models=models or None)
            ends = int(gateway.clock()) + grace_seconds
            quota_tool.update_item(gateway.dynamodb, gateway.quota_table, key.id, {}, expires_at=ends)
        except BaseException:
            gateway.apigateway.delete_usage_plan_key(usagePlanId=gateway.usage_plan_id, keyId=made["id"])
            raise
    except BaseException:
        gateway.apigateway.delete_api_key(apiKey=made["id"])
        raise
    if grace_seconds == 0:
        _set_enabled(gateway, key.id, False)
    new = Key(made["id"], key.name, True, _iso_of(made.get("createdDate")), dict(limits))
    if models:
        new.policy[quota_tool.MODELS_FIELD] = sorted(models)
    return new, value


def _set_enabled(gateway: Gateway, key_id: str, enabled: bool) -> None:
    gateway.apigateway.update_api_key(
        apiKey=key_id, patchOperations=[{"op": "replace", "path": "/enabled", "value": str(enabled).lower()}]
    )


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
        ends = _iso(int(now) + args.grace)
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


def describe(error: BaseException, gateway: Gateway | None) -> tuple[str, int]:
    """One line and an exit code for what boto3 raises."""
    name = type(error).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError", "NoRegionError", "ProfileNotFound"):
        hint = "set AWS_PROFILE/AWS_REGION or run `aws configure`"
        return f"AWS credentials or region missing ({name}): {hint}", EXIT_ACCESS
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
        where = gateway.label if gateway else "AWS"
        return f"cannot reach {where} ({name}); for --local, is `make serve` still running?", EXIT_ACCESS
    code = _code(error)
    message = _message(error)
    if code in THROTTLED:
        return f"AWS is throttling these calls ({code}) even after retries: wait a minute, run it again", EXIT_THROTTLED
    if code in DENIED:
        return f"AWS refused the credentials or access ({code}): {message}", EXIT_ACCESS
    if code in ("NotFoundException", "ResourceNotFoundException"):
        return f"not found ({code}): {message} (is the stack complete? its usage plan and quota table?)", EXIT_NOT_FOUND
    if code == "ConflictException":
        return f"someone changed this at the same time ({message}): run the command again", EXIT_FAILED
    if code:
        return f"AWS error {code}: {message}", EXIT_FAILED
    return f"{name}: {error}", EXIT_FAILED


def _code(error: BaseException) -> str:
    response = getattr(error, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _message(error: BaseException) -> str:
    response = getattr(error, "response", None)
    text = response.get("Error", {}).get("Message", "") if isinstance(response, dict) else ""
    return str(text or error).splitlines()[0][:300] if str(text or error) else ""


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _iso_of(value: Any) -> str:
    if hasattr(value, "timestamp"):
        return _iso(int(value.timestamp()))
    return str(value or "")
