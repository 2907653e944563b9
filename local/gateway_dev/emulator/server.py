"""A deterministic Mistral API emulator on 127.0.0.1: the fake upstream of the tests and of `make serve`.

This module is its server: lifecycle, scripted faults, recorded requests, and the routing of each request to
the module of its route family (chat.py, embeddings.py, responses.py, files.py...), which speaks Mistral's
wire format and answers deterministically from the request, so tests can assert on answers and a developer can
run the gateway without a key. Every response says `x-mistral-emulator: true`: nobody should mistake it for
a model. Faults (status codes, Retry-After, slowness, garbage, dropped connections, cut streams) can be
scripted per request to exercise the gateway's failure handling.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from gateway_dev.emulator import (
    agents,
    audio,
    batch,
    chat,
    classifiers,
    conversations,
    embeddings,
    files,
    fine_tuning,
    libraries,
    models,
    ocr,
    responses,
)
from gateway_dev.emulator.account import Account
from gateway_dev.emulator.wire import (
    FAULT_KEY,
    INVALID,
    Call,
    Fault,
    drop,
    fault_response,
    invalid_model,
    json_response,
)

# Each route family's dispatch: its answer, or None for a path that is not its own.
ROUTES = (
    chat.dispatch,
    embeddings.dispatch,
    models.dispatch,
    responses.dispatch,
    classifiers.dispatch,
    ocr.dispatch,
    audio.dispatch,
    files.dispatch,
    batch.dispatch,
    fine_tuning.dispatch,
    agents.dispatch,
    conversations.dispatch,
    libraries.dispatch,
)
__all__ = ["Fault", "MistralEmulator", "RecordedRequest"]


class RecordedRequest(NamedTuple):
    """A request as the emulator received it (`json`: its body, None when empty or not JSON)."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any


class _QuietHandler(WSGIRequestHandler):
    # HTTP/1.1 so streams are chunked: a cut stream is then visibly incomplete to the client.
    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:
        pass


@dataclass
class MistralEmulator:
    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = None
    # The pace of streams (seconds between events; 0 = all at once) and the least words an answer has, so
    # streaming can be seen locally: `make serve` sets them from EMULATOR_TOKENS_PER_SECOND and
    # EMULATOR_ANSWER_TOKENS.
    stream_delay: float = 0.0
    answer_words: int = 0
    # Models that always fail with this status (e.g. {"mistral-large-latest": 429}): model fallbacks can be
    # seen locally. `make serve` reads EMULATOR_FAILING_MODELS="model=status,...".
    failing_models: dict[str, int] = field(default_factory=dict)
    # Mistral answers 400 invalid_model for a model it does not serve; tests that use made-up names relax it.
    accept_any_model: bool = False
    requests: list[RecordedRequest] = field(default_factory=list)
    # The prompt_cache_keys seen: a repeat reports its prompt tokens as cached (chat.py).
    prompt_cache_keys: set[str] = field(default_factory=set)
    account: Account = field(default_factory=Account)  # files, jobs, agents... (account.py)
    _faults: deque[Fault] = field(default_factory=deque)
    _server: BaseWSGIServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> MistralEmulator:
        self._server = make_server(self.host, self.port, self._wsgi, threaded=True, request_handler=_QuietHandler)
        threading.Thread(target=self._server.serve_forever, name="mistral-emulator", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MistralEmulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://{self.host}:{self._server.server_port}"

    # -- test controls ------------------------------------------------------------------------------------
    def script(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests.clear()
            self.prompt_cache_keys.clear()

    def calls(self, path: str | None = None) -> int:
        return sum(1 for request in list(self.requests) if path is None or request.path == path)

    # -- HTTP ---------------------------------------------------------------------------------------------
    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._handle(request, environ)
        response.headers["x-mistral-emulator"] = "true"
        return response(environ, start_response)

    def _handle(self, request: Request, environ: dict[str, Any]) -> Response:
        raw = request.get_data()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = INVALID
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    request.method,
                    request.path,
                    {k.lower(): v for k, v in request.headers.items()},
                    None if payload is INVALID else payload,
                )
            )
            fault = self._faults.popleft() if self._faults else None
        environ[FAULT_KEY] = fault  # for the routes that answer like chat (agents): gates, cuts
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.drop:
            drop(environ)
            return Response(b"", status=200)
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return json_response(401, {"message": "Unauthorized", "request_id": hashlib.md5(raw).hexdigest()})
        if fault and fault.status:
            return fault_response(fault)
        failing = self.failing_models.get(str(payload.get("model"))) if isinstance(payload, dict) else None
        if failing:
            return fault_response(Fault(status=failing))
        if fault and fault.garbage:
            return Response(b"<html>upstream exploded</html>", status=200, content_type=fault.content_type)
        model = payload.get("model") if isinstance(payload, dict) else None
        if isinstance(model, str) and not self.knows(model):
            return invalid_model(model)
        call = Call(request, payload, raw, fault)
        for route in ROUTES:
            answer = route(self, call)
            if answer is not None:
                return answer
        return json_response(404, {"detail": "Not Found"})

    def knows(self, model: str) -> bool:
        return models.known(model, self.accept_any_model)

    def model_cards(self) -> list[dict[str, Any]]:
        """The models served, then the account's fine-tuned ones."""
        return models.base_cards() + models.fine_tuned_cards(list(self.account.ft_jobs.values()))
