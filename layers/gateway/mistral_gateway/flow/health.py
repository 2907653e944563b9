"""GET /health: can this container read its secret and reach its cache table? Never calls Mistral."""

from __future__ import annotations

from typing import Any

from mistral_gateway.container import current
from mistral_gateway.platform import aws
from mistral_gateway.platform.errors import GatewayError


def check_health() -> tuple[int, dict[str, Any]]:
    """(200 or 503, report). Details stay generic: the endpoint needs no caller key."""
    checks = {"secret": _secret(), "cache": _cache()}
    # The cache fails open, so only an unreadable secret makes the gateway unable to answer.
    status = 200 if checks["secret"] == "ok" else 503
    return status, {"status": "ok" if status == 200 else "degraded", "checks": checks}


def _secret() -> str:
    try:
        current().keys.mistral()
    except GatewayError:
        return "unavailable"
    return "ok"


def _cache() -> str:
    container = current()
    try:
        # GetItem is the permission the function already has; a probe key never exists.
        dynamodb = container.aws_client("dynamodb")
        dynamodb.get_item(TableName=container.settings.table_name, Key={"pk": {"S": "health#probe"}})
    except aws.errors():  # refused or unreachable: report, never raise
        return "unavailable"
    return "ok"
