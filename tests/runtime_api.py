"""A fake Lambda Runtime API on 127.0.0.1 that speaks the Extensions API's wire format (register, event/next,
exit/error), for the post-response extension's tests. The test plays the Lambda service: `invoke()` sends the
next INVOKE event; `asked` counts the extension's requests for its next event."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class RuntimeApi:
    """The Extensions API's three calls. `invoke()` sends the next INVOKE event; `asked` counts event/next calls."""

    refuse_registration: bool = False
    garble_registration: bool = False  # answer the registration with bytes that are not HTTP
    registered: list[dict[str, Any]] = field(default_factory=list)
    events: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)  # None: answer next with a 500
    asked: int = 0
    exit_errors: list[str] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def invoke(self, request_id: str) -> None:
        deadline_ms = int((time.time() + 60) * 1000)  # a slow first request (imports) must not outlive it
        self.events.put({"eventType": "INVOKE", "requestId": request_id, "deadlineMs": deadline_ms})

    def wait_asked(self, times: int, timeout: float = 30.0) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: self.asked >= times, timeout)


def serve(api: RuntimeApi) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path == "/2020-01-01/extension/register":
                api.registered.append({"name": self.headers["Lambda-Extension-Name"], **body})
                if api.garble_registration:
                    self.wfile.write(b"not an HTTP answer\r\n\r\n")
                    self.close_connection = True
                elif api.refuse_registration:
                    self._answer(403, {"errorType": "Extension.Forbidden"})
                else:
                    self._answer(200, {}, {"Lambda-Extension-Identifier": "ext-1"})
            elif self.path == "/2020-01-01/extension/exit/error":
                api.exit_errors.append(self.headers["Lambda-Extension-Function-Error-Type"])
                self._answer(202, {})
            else:
                self._answer(404, {})

        def do_GET(self) -> None:
            assert self.path == "/2020-01-01/extension/event/next"
            assert self.headers["Lambda-Extension-Identifier"] == "ext-1"
            with api.lock:
                api.asked += 1
                api.lock.notify_all()
            event = api.events.get()  # blocks, as Lambda's does between invocations
            if event is None:
                self._answer(500, {"errorType": "Runtime.Failure"})
            else:
                self._answer(200, event)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def runtime_api() -> Iterator[tuple[RuntimeApi, str]]:
    api = RuntimeApi()
    server = serve(api)
    yield api, f"127.0.0.1:{server.server_address[1]}"
    from mistral_gateway.platform import after_response

    extension = after_response._EXTENSION
    api.events.put(None)  # the extension's pending event/next fails: its thread stops
    if extension is not None:
        extension._thread.join(5)  # before the next test: its last log lines and exit report are this test's
    after_response.stop_extension()
    server.shutdown()
