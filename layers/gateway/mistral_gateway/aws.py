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

    timeout = settings().aws_timeout_seconds
    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": 2, "mode": "standard"},
    )
    return boto3.session.Session().client(service, config=config)  # type: ignore[call-overload]
