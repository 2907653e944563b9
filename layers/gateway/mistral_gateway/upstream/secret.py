"""The Mistral API key, read from Secrets Manager at run time with Powertools Parameters.

The value is cached per container for SECRET_MAX_AGE_SECONDS; `refresh=True` forces one re-read, which is
what the upstream client does once after a 401 (the key was rotated). The secret may hold the bare key or
a JSON object with an `api_key` (or `MISTRAL_API_KEY`) field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mistral_gateway.platform import aws, observability
from mistral_gateway.platform.errors import ServiceUnavailable
from mistral_gateway.platform.observability import logger

# What an operator should check, by Secrets Manager error code.
HINTS = {
    "AccessDeniedException": "the function's role needs secretsmanager:GetSecretValue on this secret (and kms:Decrypt "
    "if it uses a customer-managed key)",
    "ResourceNotFoundException": "the secret does not exist: check ExistingSecretArn or redeploy the stack",
    "DecryptionFailure": "Secrets Manager cannot decrypt the secret with its KMS key",
    "default": "Secrets Manager did not answer; see error_code",
}


# Sent to a self-hosted server that takes no key: HTTP cannot carry an empty bearer token, and such a server
# ignores the header. Never Mistral's key: that one goes to Mistral only.
NO_KEY = "none"


class Keys:
    """The upstreams' keys, read through Powertools' SecretsProvider (`provider` builds it on first need:
    a cache hit never reads a secret). The container keeps one."""

    def __init__(self, provider: Callable[[], Any], secret_id: str, self_hosted_secret_id: str, max_age: int) -> None:
        self._provider = provider
        self._secret_id = secret_id
        self._self_hosted_secret_id = self_hosted_secret_id
        self._max_age = max_age

    def mistral(self, *, refresh: bool = False) -> str:
        return self._read(self._secret_id, refresh=refresh)

    def self_hosted(self, *, refresh: bool = False) -> str:
        """The second upstream's key, from its own secret (SelfHostedSecretArn), or NO_KEY."""
        secret_id = self._self_hosted_secret_id
        return self._read(secret_id, refresh=refresh) if secret_id else NO_KEY

    def _read(self, secret_id: str, *, refresh: bool) -> str:
        return read_key(self._provider(), secret_id, max_age=self._max_age, refresh=refresh)


def read_key(provider: Any, secret_id: str, *, max_age: int, refresh: bool) -> str:
    """One key from Secrets Manager (cached by the provider for `max_age` seconds; `refresh` re-reads it)."""
    try:
        raw = provider.get(secret_id, max_age=max_age, force_fetch=refresh)
    except _read_failures() as error:
        code = aws.error_code(error.__cause__ or error.__context__ or error)  # Powertools wraps boto's error
        # Operator-facing detail in the log; the caller gets a generic 503.
        logger.error(
            "cannot read the Mistral API key from Secrets Manager",
            extra={"secret_id": secret_id, "error_code": code, "hint": HINTS.get(code, HINTS["default"])},
        )
        observability.count(observability.SECRET_ERRORS)
        raise ServiceUnavailable("The gateway is not able to reach its upstream credentials.") from None
    key = _extract(raw)
    if not key:
        logger.error("the Mistral API key secret is empty", extra={"secret_id": secret_id})
        observability.count(observability.SECRET_ERRORS)
        raise ServiceUnavailable("The gateway is not able to reach its upstream credentials.")
    return key


def _extract(raw: Any) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode()
    text = str(raw or "").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return text
        for field in ("api_key", "MISTRAL_API_KEY", "apiKey"):
            if isinstance(data.get(field), str):
                return str(data[field]).strip()
        return ""
    return text


def _read_failures() -> tuple[type[Exception], ...]:
    """What reading the secret raises when Secrets Manager refuses or fails: Powertools wraps boto's errors."""
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    return (GetParameterError, *aws.errors())
