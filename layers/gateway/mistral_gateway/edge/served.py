"""The one "request served" line of every request, and the caller's spend it adds up (policies/spend.py).

Both functions end a request here: the API function after its handler, the streaming function after a stream's
last byte (usage is known only then).
"""

from __future__ import annotations

from typing import Any

from mistral_gateway.container import current
from mistral_gateway.platform.observability import logger
from mistral_gateway.policies import spend


def request_served(fields: dict[str, Any]) -> None:
    """Log the line (the request's own fields over the logger's keys) and add it to the caller's spend."""
    container = current()
    line = {**logger.get_current_keys(), **fields}
    logger.info("request served", extra={**fields, **spend.line_fields(line, container.prices)})
    table = container.settings.quota_table_name
    if table and line.get("caller"):  # per key, day and model (spend.py); no-op without a table
        spend.record(
            line,
            container.prices,
            table=table,
            dynamodb=lambda: container.aws_client("dynamodb"),
            now=container.clock(),
        )
