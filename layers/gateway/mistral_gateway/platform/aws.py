"""What the gateway reads of AWS's errors. The clients themselves are the container's (container.py)."""

from __future__ import annotations


def errors() -> tuple[type[Exception], ...]:
    """What a botocore client's call raises when AWS refuses or cannot be reached (for the fail-open sites). botocore is
    already loaded by then: this runs only in an `except` clause, after a client made a call."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def error_code(error: BaseException) -> str:
    """AWS's error code (`ThrottlingException`...) or, for network-level failures, the exception's name."""
    response = getattr(error, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return str(code) if code else type(error).__name__
