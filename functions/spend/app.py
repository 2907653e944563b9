"""Spend per caller key: the "request served" lines CloudWatch Logs delivers (a subscription filter on the API
and streaming functions' log groups), added to the quota table exactly once per delivery.

The work happens in the layer's `mistral_gateway.policies.spend_batches`; this is the handler and its client.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mistral_gateway import container
from mistral_gateway.policies import spend_batches

# A logger of its own: this function's lines are never mistaken for the gateway's (nor delivered back here).
logger = Logger(service="mistral-gateway-spend", use_rfc3339=True)
_clients: dict[str, Any] = {}
# The prices the served lines are priced at (list prices with the template's ModelPrices over them).
container.start()


def dynamodb() -> Any:
    """One client per container, built on first use, with the SDK's default timeouts and retries: this function is
    off the request path, and a delivery it fails is retried. The endpoint comes from the SDK's own settings.
    botocore's session, as the gateway's container builds its clients: boto3's import would add to each cold start."""
    if "dynamodb" not in _clients:
        import botocore.session

        _clients["dynamodb"] = botocore.session.get_session().create_client("dynamodb")
    return _clients["dynamodb"]


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    payload = spend_batches.decode(event)
    logger.append_keys(log_group=payload.get("logGroup"), log_stream=payload.get("logStream"))
    table = os.environ["QUOTA_TABLE_NAME"]
    applied = spend_batches.apply(payload, container.current().prices, table=table, dynamodb=dynamodb(), log=logger)
    return {"chunks_applied": applied.chunks, "chunks_already_applied": applied.already}
