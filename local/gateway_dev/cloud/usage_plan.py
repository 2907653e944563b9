"""Caller keys in API Gateway, locally exactly as in the cloud: `make serve` creates the template's RestApi,
its stage and its usage plan in moto (the plan's throttle and quota from the template's own `Auth.UsagePlan`),
and puts every caller key (GATEWAY_API_KEY / GATEWAY_API_KEYS) in that plan as an API key. The local runner
then checks each caller against the plan, as API Gateway does: the presented value must be an enabled API
key that is in the plan; its id is the caller id the functions see (`apiKeyId`).

The check reads the plan at most every KEY_CHECK_MAX_AGE_SECONDS, so a key created, revoked or rotated with
`mistral-gateway keys --local ...` works or stops at once (the cloud's own propagation is documented in the
README's operator section). `make serve` writes where all this lives to STATE_FILE, which the CLI reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateway_dev.cloud.template import TEMPLATE_PATH, Template

API = "GatewayApi"
KEY_CHECK_MAX_AGE_SECONDS = 1.0
API_GATEWAY_MIN_KEY_LENGTH = 20  # CreateApiKey refuses shorter values, in the cloud and in moto
STATE_FILE = TEMPLATE_PATH.parent / ".aws-sam" / "local-gateway.json"
STATE_ENV = "MISTRAL_GATEWAY_LOCAL_STATE"  # another state file (tests, two runners at once)


@dataclass(frozen=True)
class LocalApi:
    """Where `make serve`'s keys live: what `keys --local` needs to find them."""

    endpoint_url: str  # moto
    region: str
    rest_api_id: str
    stage: str
    usage_plan_id: str
    quota_table: str
    url: str = ""  # the gateway's own URL, once it listens

    def save(self, path: Path | None = None) -> Path:
        target = path or state_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return target

    @classmethod
    def load(cls, path: Path | None = None) -> LocalApi:
        return cls(**json.loads((path or state_path()).read_text()))


def state_path() -> Path:
    return Path(os.environ.get(STATE_ENV) or STATE_FILE)


def usage_plan_settings(template: Template, api: str = API) -> dict[str, Any]:
    """create_usage_plan's arguments from the template's `Auth.UsagePlan` (throttle, quota, description)."""
    plan = template.properties(api)["Auth"]["UsagePlan"]
    arguments: dict[str, Any] = {"description": str(plan.get("Description", ""))}
    if "Throttle" in plan:
        arguments["throttle"] = {
            "rateLimit": float(plan["Throttle"]["RateLimit"]),
            "burstLimit": int(plan["Throttle"]["BurstLimit"]),
        }
    if "Quota" in plan:
        arguments["quota"] = {"limit": int(plan["Quota"]["Limit"]), "period": str(plan["Quota"]["Period"])}
    return arguments


def stored_value(key: str) -> str:
    """The value kept in moto for a caller key. API Gateway takes no key under 20 characters; `make serve` takes
    short ones too, to try isolation by hand (GATEWAY_API_KEYS=key-a,key-b), and keeps them lengthened the same
    way every time, so the caller still sends the short key. Keys of 20 characters or more are kept as they are."""
    if len(key) >= API_GATEWAY_MIN_KEY_LENGTH:
        return key
    return f"{key}.local-key-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def provision(
    template: Template, keys: list[str], *, stage: str = "prod", session: Any = None, names: list[str] | None = None
) -> tuple[LocalApi, dict[str, str]]:
    """The template's API, stage and usage plan in moto, with `keys` as API keys in the plan.
    Returns where they live and {key value: key id}."""
    import boto3

    session = session or boto3.session.Session()
    client = session.client("apigateway")
    name = template.physical_name(API)
    rest_api_id = client.create_rest_api(name=name, endpointConfiguration={"types": ["REGIONAL"]})["id"]
    root = next(item["id"] for item in client.get_resources(restApiId=rest_api_id)["items"] if item["path"] == "/")
    # A stage needs a deployment, and a deployment a method: one proxy method stands for the template's routes.
    client.put_method(restApiId=rest_api_id, resourceId=root, httpMethod="ANY", authorizationType="CUSTOM")
    client.put_integration(restApiId=rest_api_id, resourceId=root, httpMethod="ANY", type="AWS_PROXY",
                           integrationHttpMethod="POST", uri="arn:aws:apigateway:local:lambda:path/api")  # fmt: skip
    client.create_deployment(restApiId=rest_api_id, stageName=stage)
    plan = client.create_usage_plan(
        name=f"{name}-usage-plan",
        apiStages=[{"apiId": rest_api_id, "stage": stage}],
        **usage_plan_settings(template),
    )
    callers: dict[str, str] = {}
    for n, value in enumerate(keys):
        key_name = (names or [])[n] if n < len(names or []) else ("local-caller" if n == 0 else f"local-caller-{n + 1}")
        key_id = client.create_api_key(name=key_name, value=stored_value(value), enabled=True)["id"]
        client.create_usage_plan_key(usagePlanId=plan["id"], keyId=key_id, keyType="API_KEY")
        callers[value] = key_id
    api = LocalApi(
        endpoint_url=str(client.meta.endpoint_url),
        region=str(client.meta.region_name),
        rest_api_id=rest_api_id,
        stage=stage,
        usage_plan_id=plan["id"],
        quota_table=template.physical_name("QuotaTable"),
    )
    return api, callers


class UsagePlanCallers:
    """The caller check against a usage plan: value -> key id when the key is enabled and in the plan.
    What it read is kept at most `max_age` seconds."""

    def __init__(self, usage_plan_id: str, *, session: Any = None, max_age: float = KEY_CHECK_MAX_AGE_SECONDS):
        import boto3

        self.usage_plan_id = usage_plan_id
        self.max_age = max_age
        self._client = (session or boto3.session.Session()).client("apigateway")
        self._keys: dict[str, str] = {}
        self._read_at = -1e18
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return True  # every route but the public ones needs a key

    def find(self, presented: str) -> str | None:
        keys = self._current()
        found = None
        stored = stored_value(presented).encode()
        for value, key_id in keys.items():  # compared in constant time, as the static check does
            if hmac.compare_digest(value.encode(), stored):
                found = key_id
        return found

    def _current(self) -> dict[str, str]:
        with self._lock:
            if time.monotonic() - self._read_at <= self.max_age:
                return self._keys
            self._keys = self._read()
            self._read_at = time.monotonic()
            return self._keys

    def _read(self) -> dict[str, str]:
        in_plan = {
            item["id"]
            for page in self._client.get_paginator("get_usage_plan_keys").paginate(usagePlanId=self.usage_plan_id)
            for item in page.get("items", [])
        }
        keys: dict[str, str] = {}
        for page in self._client.get_paginator("get_api_keys").paginate(includeValues=True):
            for item in page.get("items", []):
                if item["id"] in in_plan and item.get("enabled") and item.get("value"):
                    keys[item["value"]] = item["id"]
        return keys


def forget(path: Path, api: LocalApi) -> None:
    """Remove the state file when it still describes this runner's API (another runner may have replaced it)."""
    with contextlib.suppress(OSError, ValueError, TypeError):
        if LocalApi.load(path).rest_api_id == api.rest_api_id:
            path.unlink()
