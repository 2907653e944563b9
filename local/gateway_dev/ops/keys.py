"""A gateway's caller keys, where they live and what can be done to one: a deployed stack's or `make serve`'s
usage plan and quota table (connect_stack, connect_local), the keys in the plan (Key, keys_in_plan, find),
create, rotate, revoke, and AWS failures said in one line with an exit code (describe). keys_cli.py is the
`mistral-gateway keys` command on top of it.

A key is an API Gateway API key in the stack's usage plan (the plan's throttle and quota apply to it); its
budgets, the models it may use and when it stops working are one item of the quota table
(`limits#<key id>`), read by the gateway through its cached limits read (quota.py, key_policy.py).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway_dev.ops import quota as quota_tool

EXIT_USAGE, EXIT_NOT_FOUND, EXIT_ACCESS, EXIT_THROTTLED, EXIT_FAILED = 2, 3, 4, 5, 1
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
            "expires_at": iso(self.expires_at) if self.expires_at is not None else None,
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

    def record(key_id: str) -> None:
        if limits or models:
            quota_tool.update_item(gateway.dynamodb, gateway.quota_table, key_id, limits or {}, models=models)

    made, value = _issue(gateway, name, "caller key of the Mistral gateway (mistral-gateway keys)", record)
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

    def record(key_id: str) -> None:
        if limits or models:
            quota_tool.update_item(gateway.dynamodb, gateway.quota_table, key_id, limits, models=models or None)
        ends = int(gateway.clock()) + grace_seconds
        quota_tool.update_item(gateway.dynamodb, gateway.quota_table, key.id, {}, expires_at=ends)

    made, value = _issue(gateway, key.name, f"rotated from {key.id} (mistral-gateway keys)", record)
    if grace_seconds == 0:
        _set_enabled(gateway, key.id, False)
    new = Key(made["id"], key.name, True, _iso_of(made.get("createdDate")), dict(limits))
    if models:
        new.policy[quota_tool.MODELS_FIELD] = sorted(models)
    return new, value


def _issue(gateway: Gateway, name: str, description: str, record: Callable[[str], None]) -> tuple[Any, str]:
    """A new API key in the plan, then `record(its id)` in the quota table: the key and its value. Nothing is
    left half-made: if a step fails, the steps before it are undone."""
    value = KEY_PREFIX + secrets.token_urlsafe(32)
    made = gateway.apigateway.create_api_key(name=name, value=value, enabled=True, description=description)
    try:
        gateway.apigateway.create_usage_plan_key(usagePlanId=gateway.usage_plan_id, keyId=made["id"], keyType="API_KEY")
        try:
            record(made["id"])
        except BaseException:
            gateway.apigateway.delete_usage_plan_key(usagePlanId=gateway.usage_plan_id, keyId=made["id"])
            raise
    except BaseException:
        gateway.apigateway.delete_api_key(apiKey=made["id"])
        raise
    return made, value


def _set_enabled(gateway: Gateway, key_id: str, enabled: bool) -> None:
    gateway.apigateway.update_api_key(
        apiKey=key_id, patchOperations=[{"op": "replace", "path": "/enabled", "value": str(enabled).lower()}]
    )


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


def iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _iso_of(value: Any) -> str:
    if hasattr(value, "timestamp"):
        return iso(int(value.timestamp()))
    return str(value or "")
