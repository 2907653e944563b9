"""Errors the gateway answers with, each rendered as a Mistral-style JSON error body.

Mistral's own errors look like {"object": "error", "message": ..., "type": ..., "param": ..., "code": ...};
both the mistralai and the OpenAI SDKs surface `message` to the caller, so it always says what is wrong.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """An answer the gateway gives instead of Mistral's. Each kind names its HTTP status and Mistral's error
    `type` where it is declared: `class NotFound(InvalidRequest, status=404)`."""

    status = 500
    error_type = "internal_error"

    def __init_subclass__(cls, *, status: int | None = None, error_type: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if error_type is not None:
            cls.error_type = error_type

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


class InvalidRequest(GatewayError, status=400, error_type="invalid_request_error"):
    """The request itself is wrong (bad JSON, a field out of range, a route that does not exist): a 4xx."""


class RequestValidationFailed(InvalidRequest, status=422):
    """The body is JSON but not a valid request: 422, like Mistral, with a `detail` list the SDK parses."""


class PayloadTooLarge(InvalidRequest, status=413):
    """The body is larger than the gateway accepts (MaxBodyBytes, or the cloud's own payload limits)."""


class UnsupportedMediaType(InvalidRequest, status=415):
    """A body that should be JSON came with another content type."""


class NotFound(InvalidRequest, status=404):
    """No such route, model or resource; also what another caller's resource looks like."""


class MethodNotAllowed(InvalidRequest, status=405):
    """The route exists, the method does not."""


class Unauthorized(GatewayError, status=401, error_type="authentication_error"):
    """The caller's key is missing, unknown or expired."""


class Forbidden(GatewayError, status=403, error_type="permission_error"):
    """The key is valid but may not do this (a model outside its list, a route the operator turned off)."""


class RateLimited(GatewayError, status=429, error_type="rate_limited"):
    """A budget is spent, or Mistral is rate-limiting the gateway: 429 with Retry-After."""

    def __init__(self, message: str, *, retry_after_seconds: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("Retry-After", str(max(1, retry_after_seconds)))


class UpstreamError(GatewayError, status=502, error_type="upstream_error"):
    """Mistral failed, answered garbage, or could not be reached: 502."""


class UpstreamTimeout(GatewayError, status=504, error_type="upstream_timeout"):
    """Mistral did not answer within the request's deadline: 504."""


class ServiceUnavailable(GatewayError, status=503, error_type="service_unavailable"):
    """The gateway itself cannot serve (secret unreadable, circuit open): 503."""


class UpstreamRejected(GatewayError, error_type="invalid_request_error"):
    """Mistral refused the request itself (400/404/422...): relayed with Mistral's own status and body."""

    def __init__(self, status: int, upstream_body: Any, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.upstream_body = upstream_body

    def body(self) -> dict[str, Any]:
        if isinstance(self.upstream_body, dict) and self.upstream_body:
            return self.upstream_body
        return super().body()
