"""Errors the gateway answers with, each rendered as a Mistral-style JSON error body.

Mistral's own errors look like {"object": "error", "message": ..., "type": ..., "param": ..., "code": ...};
both the mistralai and the OpenAI SDKs surface `message` to the caller, so it always says what is wrong.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status = 500
    error_type = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        detail: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}
        self.detail = detail

    def body(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "object": "error",
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }
        if self.detail is not None:
            payload["detail"] = self.detail
        return payload


class InvalidRequest(GatewayError):
    status = 400
    error_type = "invalid_request_error"


class RequestValidationFailed(InvalidRequest):
    """The body is JSON but not a valid request: 422, like Mistral, with a `detail` list the SDK parses."""

    status = 422


class PayloadTooLarge(InvalidRequest):
    status = 413


class UnsupportedMediaType(InvalidRequest):
    status = 415


class NotFound(InvalidRequest):
    status = 404


class MethodNotAllowed(InvalidRequest):
    status = 405


class Unauthorized(GatewayError):
    status = 401
    error_type = "authentication_error"


class Forbidden(GatewayError):
    status = 403
    error_type = "permission_error"


class RateLimited(GatewayError):
    status = 429
    error_type = "rate_limited"

    def __init__(self, message: str, *, retry_after_seconds: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("Retry-After", str(max(1, retry_after_seconds)))


class UpstreamError(GatewayError):
    """Mistral failed, answered garbage, or could not be reached: 502."""

    status = 502
    error_type = "upstream_error"


class UpstreamTimeout(GatewayError):
    status = 504
    error_type = "upstream_timeout"


class ServiceUnavailable(GatewayError):
    """The gateway itself cannot serve (secret unreadable, circuit open): 503."""

    status = 503
    error_type = "service_unavailable"


class UpstreamRejected(GatewayError):
    """Mistral refused the request itself (400/404/422...): relayed with Mistral's own status and body."""

    error_type = "invalid_request_error"

    def __init__(self, status: int, upstream_body: Any, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.upstream_body = upstream_body

    def body(self) -> dict[str, Any]:
        if isinstance(self.upstream_body, dict) and self.upstream_body:
            return self.upstream_body
        return super().body()
