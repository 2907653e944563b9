"""Calls to Mistral (or a self-hosted Mistral-compatible server) through the official SDK, under retry.py's policy.

The SDK client is built once per container and imported on first need (a cache hit never loads it). The
SDK's own retries are off: they honour Retry-After without a cap, and a Lambda has a deadline. Every raw
response is remembered, so Mistral's bytes pass through untouched.
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mistral_gateway.platform.config import Settings
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.errors import UpstreamError
from mistral_gateway.upstream import refusals
from mistral_gateway.upstream.retry import MISTRAL, Upstream, attempt_failed, call, last_response, model_of, remember


@dataclass(frozen=True)
class UpstreamAnswer:
    body: bytes  # Mistral's JSON exactly as received
    data: dict[str, Any]

    @property
    def usage(self) -> dict[str, int]:
        from mistral_gateway.platform.economics import token_usage

        return token_usage(self.data.get("usage")) or {"prompt_tokens": 0, "completion_tokens": 0}


def new_sdk(upstream: str, settings: Settings, read_key: Callable[..., str]) -> Any:
    """An SDK client for one upstream (the container keeps it): its key is read on every request (from the
    Parameters cache), every raw response is remembered for the pass-through of Mistral's bytes."""
    import httpx2

    from mistral_gateway.upstream import sdk

    mistralai_client = sdk.load()
    _build_sdk_models_once()
    http = httpx2.Client(event_hooks={"response": [remember]}, follow_redirects=False)
    return mistralai_client.Mistral(
        api_key=read_key,
        server_url=settings.server_url if upstream == MISTRAL else settings.self_hosted_url,
        client=http,
        async_client=NoAsyncClient(),
    )


class NoAsyncClient:
    """What the SDK gets as its async HTTP client: the gateway never calls an async method (each function is
    synchronous), and the SDK's default, an httpx2.AsyncClient with its own TLS context (the CA bundle read
    again), cost ~35 ms of every cold miss. Using it by mistake fails loudly instead of silently."""

    async def send(self, request: Any, **_: Any) -> Any:
        raise RuntimeError("the gateway makes no async SDK calls")

    def build_request(self, *_: Any, **__: Any) -> Any:
        raise RuntimeError("the gateway makes no async SDK calls")

    async def aclose(self) -> None:
        return None


def _build_sdk_models_once() -> None:
    """mistralai 3.x builds a new pydantic model class (`create_model`) every time it marshals a request body
    or unmarshals an argument: ~1.5 ms each, several per call, ~8 ms of every upstream call measured by the
    streaming benchmark. The class depends only on the type it wraps, so each is built once per container.
    It also reads a request class's type hints (`typing.get_type_hints`, evaluating every annotation) on every
    call to place query, path and form parameters: ~1 ms a call; a class's hints never change, so they are read
    once per class. (docs/decisions.md; the SDK is pinned, and every SDK test exercises this.)"""
    from mistral_gateway.upstream import sdk

    sdk.load()
    from mistralai.client.utils import forms, queryparams, serializers, url

    build = serializers.create_model
    if getattr(build, "memoized_by_gateway", False):
        return
    built: dict[tuple[str, Any], Any] = {}

    def create_model(name: str, /, **fields: Any) -> Any:
        wrapped = fields.get("body")
        key = (name, wrapped[0] if isinstance(wrapped, tuple) else None)
        try:
            model = built.get(key)
        except TypeError:  # a type that cannot be hashed: build it every time, as the SDK does
            return build(name, **fields)
        if model is None:
            model = built[key] = build(name, **fields)
        return model

    create_model.memoized_by_gateway = True  # type: ignore[attr-defined]
    serializers.create_model = create_model
    hints = functools.cache(typing.get_type_hints)  # the SDK only reads what it returns
    for module in (queryparams, url, forms):
        module.get_type_hints = hints  # type: ignore[attr-defined]


# `via` is the upstream (retry.Upstream) and `client` its SDK client: both the container's.
def chat(via: Upstream, client: Any, arguments: dict[str, Any], deadline: Deadline) -> UpstreamAnswer:
    return _passthrough(via, "chat", client.chat.complete, arguments, deadline)


def fim(via: Upstream, client: Any, arguments: dict[str, Any], deadline: Deadline) -> UpstreamAnswer:
    return _passthrough(via, "fim", client.fim.complete, arguments, deadline)


def embeddings(via: Upstream, client: Any, arguments: dict[str, Any], deadline: Deadline) -> UpstreamAnswer:
    return _passthrough(via, "embeddings", client.embeddings.create, arguments, deadline)


def models(via: Upstream, client: Any, deadline: Deadline) -> UpstreamAnswer:
    return _passthrough(via, "models", client.models.list, {}, deadline, generates=False)


@dataclass(frozen=True)
class UpstreamStream:
    """Mistral's answer to a streamed request, opened (status 200 seen) but not yet read."""

    response: Any  # the httpx2 response behind the SDK's EventStream

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives. A silence longer than the idle timeout raises httpx2.ReadTimeout."""
        return self.response.iter_bytes()  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop reading (the caller hung up, or the stream ran too long), from any thread: the connection is
        shut down, which wakes a read blocked in the reader thread (closing alone would not) and tells
        Mistral to stop writing."""
        network = self.response.extensions.get("network_stream")
        connection = network.get_extra_info("socket") if network is not None else None
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self.response.close()


def open_stream(
    via: Upstream, client: Any, operation: str, arguments: dict[str, Any], deadline: Deadline, idle_timeout_ms: int
) -> UpstreamStream:
    """Open a streamed chat or FIM answer under the retry policy: everything before Mistral's 200 is retried
    and mapped like a plain call; once this returns, the caller forwards the body and failures are in-band.
    The SDK builds, authenticates and checks the request; its parsed events are not used, so Mistral's bytes
    pass through untouched."""
    method = client.chat.stream if operation == "chat" else client.fim.stream

    def attempt(timeout_ms: int) -> UpstreamStream:
        # httpx's read timeout applies to every read of the body: it is the stream's idle timeout.
        events = method(**arguments, timeout_ms=min(timeout_ms, idle_timeout_ms))
        return UpstreamStream(events.response)

    return call(
        attempt,
        deadline,
        via=via,
        operation=f"{operation}.stream",
        model=model_of(arguments),
        generates=True,
    )


def stream_failed(via: Upstream, kind: str, model: str | None = None) -> None:
    """A stream that broke after Mistral's 200 (cut, idle too long): counted like a failed attempt of its model."""
    attempt_failed(kind, via.guard(model))


# The SDK's own request models: what it refuses client-side, before sending.
_SDK_REQUESTS = {
    "chat": "ChatCompletionRequest",
    "fim": "FIMCompletionRequest",
    "embeddings": "EmbeddingRequest",
    "responses": "CreateResponseRequest",  # sent by the relay (flow/responses.py), checked by the SDK's model first
}


def preflight(operation: str, arguments: dict[str, Any]) -> None:
    """Raise the caller's 422 for a request the SDK would refuse, before the gateway stores or spends anything
    (a budget reservation; the single-flight lease the lookup took is given back). `call` still tells refusals
    from garbage as a backstop."""
    from pydantic import ValidationError

    from mistral_gateway.upstream import sdk

    try:
        getattr(sdk.models(), _SDK_REQUESTS[operation]).model_validate(arguments)
    except ValidationError as error:
        raise refusals.classify(error, None).error from None


def _passthrough(
    via: Upstream,
    operation: str,
    method: Callable[..., Any],
    arguments: dict[str, Any],
    deadline: Deadline,
    *,
    generates: bool = True,
) -> UpstreamAnswer:
    """One SDK method under the retry policy, answering with Mistral's raw bytes (the SDK still parses them).
    The client is built (and imported) before the clock starts: UpstreamLatency is the upstream's time only."""

    def attempt(timeout_ms: int) -> UpstreamAnswer:
        method(**arguments, timeout_ms=timeout_ms)
        return _raw_answer()

    return call(attempt, deadline, via=via, operation=operation, model=model_of(arguments), generates=generates)


def _raw_answer() -> UpstreamAnswer:
    response = last_response()
    body = response.content
    data = json.loads(body)
    if not isinstance(data, dict):
        raise UpstreamError("Mistral returned an unexpected answer.")
    return UpstreamAnswer(body=body, data=data)
