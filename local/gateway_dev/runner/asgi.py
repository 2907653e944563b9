"""What `make serve` runs under uvicorn: template.yaml's API, streamed routes included, on one port.

A request for a route the template marks `ResponseTransferMode: RESPONSE_STREAM` goes to that function's
ASGI app (the same app the Lambda Web Adapter runs in the cloud), with the headers the adapter adds: API
Gateway's request context (caller key id, request id), the Lambda context and a trace id. Every other route
goes to the WSGI bridge (bridge.py), which invokes the buffered function's handler with a proxy event.
Caller keys are checked the same way for both, before any function work.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from a2wsgi import WSGIMiddleware

from gateway_dev.cloud import cloud_limits
from gateway_dev.cloud.apigw import proxy_event
from gateway_dev.cloud.template import Template
from gateway_dev.runner.bridge import ApiBridge
from gateway_dev.runner.caller_keys import authenticate
from gateway_dev.runner.functions import import_code, invocation_state, own_container
from gateway_dev.runner.response_sending import sending_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def load_asgi_app(template: Template, logical_id: str) -> AsgiApp:
    """Import a streaming function's app from its CodeUri, as the Web Adapter's uvicorn would."""
    location = template.asgi_app(logical_id)
    if location is None:
        raise RuntimeError(f"{logical_id} streams but has no Metadata.LocalAsgiApp")
    code_dir, module_name, attribute = location
    module = import_code(code_dir, module_name, f"_local_asgi_{logical_id}_{module_name}")
    app: AsgiApp = getattr(module, attribute)
    return app


class LocalGateway:
    """ASGI: streamed routes to their function's ASGI app, the rest to the WSGI bridge."""

    def __init__(self, bridge: ApiBridge) -> None:
        self.bridge = bridge
        self.buffered: AsgiApp = WSGIMiddleware(bridge, workers=16)  # type: ignore[arg-type,assignment]
        self.apps: dict[str, AsgiApp] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        # API Gateway buffers the body and refuses one over 10 MB before anything else (cloud_limits.py).
        buffered = await cloud_limits.buffered_body(receive)
        if buffered is None:
            return  # the caller hung up while sending: nobody to answer, nothing to log
        body, size = buffered
        if size > cloud_limits.API_GATEWAY_MAX_REQUEST_BYTES:
            too_long = cloud_limits.too_large(None, cloud_limits.API_GATEWAY_MAX_REQUEST_BYTES, "API Gateway")
            await cloud_limits.send_error(send, 413, too_long, self.bridge.template.gateway_response_headers())
            return
        receive = cloud_limits.replaying(body, receive)
        path, route = self.bridge.route_for(scope["method"], scope["path"])
        if route is None or not route.streams:
            with sending_response():  # the function's store after its response starts once this one is sent
                await self.buffered(scope, receive, send)  # the bridge labels its own answers
            return
        headers = _Headers(scope["headers"])
        key_id = None
        if self.bridge.api_keys and not route.public:
            key_id, refusal = authenticate(self.bridge.api_keys, headers, self.bridge.identity_headers)
            if refusal is not None:
                status, message, error_type = refusal
                await _error(send, status, message, error_type, self.bridge.template.gateway_response_headers())
                return
        app = self.apps.get(route.function) or self.apps.setdefault(
            route.function, load_asgi_app(self.bridge.template, route.function)
        )
        adapted = dict(scope, path=path, raw_path=path.encode(), headers=self._adapter_headers(scope, path, key_id))
        if len(body) > cloud_limits.LAMBDA_MAX_PAYLOAD_BYTES:  # the Web Adapter's invocation carries the body
            too_long = cloud_limits.too_large(len(body), cloud_limits.LAMBDA_MAX_PAYLOAD_BYTES, "a Lambda invocation")
            await cloud_limits.send_error(send, 413, too_long, self.bridge.template.gateway_response_headers())
            return
        state = self.bridge.container(route.function)  # imported after the app: its own, not the import's
        # Its own log keys: the app's logger.clear_state()/append_keys() are one request's, as in its container.
        with invocation_state(), own_container(state):
            await app(adapted, receive, self._labelled(send))

    def _adapter_headers(self, scope: Scope, path: str, key_id: str | None) -> list[tuple[bytes, bytes]]:
        """The request's headers plus what the Lambda Web Adapter adds for the app."""
        source_ip = (scope.get("client") or ("127.0.0.1", 0))[0]
        added = adapter_headers(scope["method"], path, key_id, stage=self.bridge.stage, source_ip=source_ip)
        kept = [(name, value) for name, value in scope["headers"] if name.decode("latin-1").lower() not in added]
        return kept + [(name.encode(), value.encode()) for name, value in added.items()]

    def _labelled(self, send: Send) -> Send:
        """Adds the runner's own response headers (e.g. the emulator label) to every answer."""
        extra = [(name.lower().encode(), value.encode()) for name, value in self.bridge.extra_headers.items()]
        if not extra:
            return send
        names = {name for name, _ in extra}

        async def labelled(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(name, value) for name, value in message.get("headers", []) if name.lower() not in names]
                message = dict(message, headers=[*kept, *extra])
            await send(message)

        return labelled


def adapter_headers(
    method: str, path: str, key_id: str | None, *, stage: str = "prod", source_ip: str = "127.0.0.1"
) -> dict[str, str]:
    """What the Lambda Web Adapter adds to a request for the app: API Gateway's request context (caller key id,
    request id), the Lambda context and a trace id."""
    event = proxy_event(method, path, resource=path, stage=stage, api_key_id=key_id, source_ip=source_ip)
    context = event["requestContext"]
    function_timeout_ms = 900_000
    lambda_context = {
        "request_id": str(uuid.uuid4()),
        "deadline": int(time.time() * 1000) + function_timeout_ms,
        "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:local-stream",
        "env_config": {"function_name": "local-stream", "memory": 512},
    }
    return {
        "x-amzn-request-context": json.dumps(context),
        "x-amzn-lambda-context": json.dumps(lambda_context),
        "x-amzn-trace-id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
    }


class _Headers:
    """Case-insensitive read access to ASGI headers."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._values = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw}

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(name.lower(), default)


async def _error(send: Send, status: int, message: str, error_type: str, headers: dict[str, str]) -> None:
    """The authorizer's refusal, with the headers API Gateway puts on its own errors (CORS)."""
    body = json.dumps({"object": "error", "message": message, "type": error_type, "param": None, "code": None})
    raw_headers = [(b"content-type", b"application/json")]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body.encode()})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# How long an idle client connection stays open. uvicorn's default (5 s) equals httpx's own pool expiry, so a
# client could reuse a connection in the moment the server closes it: a "connection reset" for an SDK with its
# retries off (seen under load). Longer than any client pool's expiry, as API Gateway's own idle timeout is.
KEEP_ALIVE_S = 65


class BackgroundServer:
    """uvicorn serving an ASGI app from a thread (tests, the benchmark): `url`, then `stop()`."""

    def __init__(self, app: AsgiApp, host: str = "127.0.0.1", port: int = 0) -> None:
        import socket
        import threading

        import uvicorn

        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as serve.py: no delayed-ACK stall
        self._socket.bind((host, port))
        self._socket.listen(128)
        self.url = f"http://{host}:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=KEEP_ALIVE_S
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()
