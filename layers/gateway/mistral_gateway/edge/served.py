"""The one "request served" line of every request: it is also the caller's spend record (policies/spend.py).

Both functions end a request here: the API function after its handler, the streaming function after a stream's
last byte (usage is known only then).
"""

from __future__ import annotations

from typing import Any

from mistral_gateway.container import current
from mistral_gateway.platform.observability import logger
from mistral_gateway.policies import spend


def request_served(fields: dict[str, Any]) -> None:
    """Log the line (the request's own fields over the logger's keys, with what it cost or saved). Nothing else
    is written: CloudWatch Logs delivers the line to the spend function (policies/spend_batches.py)."""
    line = {**logger.get_current_keys(), **fields}
    logger.info("request served", extra={**fields, **spend.line_fields(line, current().prices)})
