"""boto3 clients built once per container, with short timeouts so a sick AWS service adds little latency.

The endpoint comes from boto3's own settings (AWS_ENDPOINT_URL), which is how the local runner and the
tests point the code at moto.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from mistral_gateway.config import settings


@cache
def client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    # The cache fails open, so a slow DynamoDB should cost at most ~1 s; the secret is needed, so it gets more.
    timeout = settings().cache_timeout_seconds if service == "dynamodb" else settings().aws_timeout_seconds
    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": 2, "mode": "standard"},
    )
    return boto3.session.Session().client(service, config=config)  # type: ignore[call-overload]


def error_code(error: BaseException) -> str:
    """AWS's error code (`ThrottlingException`...) or, for network-level failures, the exception's name."""
    response = getattr(error, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return str(code) if code else type(error).__name__
