"""The CORS headers every answer carries for browsers, built once from the template's CorsAllowOrigin.

Powertools' CORSConfig adds them to every response of the resolver (routes, errors, not-found) whenever the
request has an Origin, and answers preflights that reach the function. The streaming function's Starlette app
gets the same policy through Starlette's CORSMiddleware. In the cloud API Gateway answers preflights itself
(template.yaml Cors: a MOCK OPTIONS method on every path, no key needed); the allowed headers here and there
are the same list (a test keeps them in step).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import CORSConfig

from mistral_gateway.container import settings

# What a browser script may read of an answer besides the CORS-safelisted headers: the cache status, usage,
# cost and savings (economics.py), the caller's budget (quota.py), when to retry, a download's file name, and
# who answered (fallback.py). A test checks every such header the code sets is listed.
EXPOSED_HEADERS = (
    "X-Cache",
    "X-Usage-Prompt-Tokens",
    "X-Usage-Completion-Tokens",
    "X-Usage-Cached-Prompt-Tokens",
    "X-Estimated-Cost-USD",
    "X-Cache-Saved-Tokens",
    "X-Cache-Saved-Cost-USD",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
    "Retry-After",
    "Content-Disposition",
    "X-Served-Model",
    "X-Served-Upstream",
    "X-Fallback-Reason",
    "X-Gateway-Max-Tokens-Capped",
)
# Request headers a browser may send: Powertools always allows Authorization, Content-Type, X-Api-Key,
# X-Amz-Date and X-Amz-Security-Token; the SDKs add these (OpenAI's x-stainless-* telemetry included).
ALLOWED_HEADERS = (
    "Cache-Control",
    "Accept",
    "X-Gateway-Cache-Control",
    "X-Gateway-Fallbacks",
    "X-Stainless-Arch",
    "X-Stainless-Lang",
    "X-Stainless-Os",
    "X-Stainless-Package-Version",
    "X-Stainless-Retry-Count",
    "X-Stainless-Runtime",
    "X-Stainless-Runtime-Version",
    "X-Stainless-Timeout",
)
PREFLIGHT_MAX_AGE_SECONDS = 600


def cors_config() -> CORSConfig:
    return CORSConfig(
        allow_origin=settings().cors_allow_origin,
        allow_headers=list(ALLOWED_HEADERS),
        expose_headers=list(EXPOSED_HEADERS),
        max_age=PREFLIGHT_MAX_AGE_SECONDS,
    )


def middleware_options() -> dict[str, Any]:
    """The same policy for Starlette's CORSMiddleware (the streaming function's ASGI app)."""
    return {
        "allow_origins": [settings().cors_allow_origin],
        "allow_methods": ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        "allow_headers": allowed_request_headers(),
        "expose_headers": list(EXPOSED_HEADERS),
        "max_age": PREFLIGHT_MAX_AGE_SECONDS,
    }


def allowed_request_headers() -> list[str]:
    """Every request header a preflight allows (Powertools' built-in ones plus ours), as the template lists them."""
    return sorted(CORSConfig(allow_headers=list(ALLOWED_HEADERS)).allow_headers)
