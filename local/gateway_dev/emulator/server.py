"""A deterministic Mistral API emulator on 127.0.0.1: the fake upstream of the tests and of `make serve`.

It speaks Mistral's wire format (chat and FIM completions, their SSE streams, models, embeddings, the error
shapes) and answers deterministically from the request, so tests can assert on answers and a developer can
run the gateway without a key. Every response says `x-mistral-emulator: true`: nobody should mistake it for
a model. Faults (status codes, Retry-After, slowness, garbage, dropped connections, cut streams) can be
scripted per request to exercise the gateway's failure handling.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from gateway_dev.emulator import responses as emulator_responses
from gateway_dev.emulator import routes as emulator_routes

EMBEDDING_DIMENSIONS = 1024
FAULT_KEY = "gateway_dev.emulator.fault"  # the request's scripted Fault, in its WSGI environ
# Words that lengthen an answer to `answer_words`, so a paced stream lasts long enough to watch.
FILLER = ["and", "the", "emulator", "keeps", "writing", "one", "word", "at", "a", "time"]

MODELS: list[dict[str, Any]] = [
    {"id": "mistral-small-latest", "fim": False, "chat": True, "context": 131072},
    {"id": "mistral-large-latest", "fim": False, "chat": True, "context": 131072},
    {"id": "codestral-latest", "fim": True, "chat": True, "context": 262144},
    {"id": "mistral-embed", "fim": False, "chat": False, "context": 8192},
    {"id": "mistral-ocr-latest", "fim": False, "chat": False, "context": 16384},
    {"id": "mistral-moderation-latest", "fim": False, "chat": False, "context": 8192},
]


@dataclass(frozen=True)
class Fault:
    """What the next request gets instead of a normal answer (faults are consumed one per request)."""

    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    garbage: bool = False
    drop: bool = False
    stream_cut: bool = False
    body: dict[str, Any] | None = None
    chunk_delay: float | None = None  # seconds between stream events (default: the emulator's pace)
    stall: float = 0.0  # seconds of silence in the middle of a stream (before its third event)
    # Holds the stream before its third event until the test sets it: proves what a client got meanwhile.
    gate: threading.Event | None = field(default=None, compare=False)
    stream_error: bool = False  # an error event in place of the third event, then the connection ends
    content_type: str = "application/json"  # of the garbage body (text/html: a proxy's error page)


@dataclass(frozen=True)
class RecordedRequest:
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
    # The prompt_cache_keys seen: a repeat reports its prompt tokens as cached (emulator_responses.py).
    prompt_cache_keys: set[str] = field(default_factory=set)
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
            payload = ValueError
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    request.method,
                    request.path,
                    {k.lower(): v for k, v in request.headers.items()},
                    None if payload is ValueError else payload,
                )
            )
            fault = self._faults.popleft() if self._faults else None
        environ[FAULT_KEY] = fault  # for the other modules' streams (agents, conversations): gates, cuts
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.drop:
            _drop(environ)
            return Response(b"", status=200)
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _json(401, {"message": "Unauthorized", "request_id": hashlib.md5(raw).hexdigest()})
        if fault and fault.status:
            return _fault_response(fault)
        failing = self.failing_models.get(str(payload.get("model"))) if isinstance(payload, dict) else None
        if failing:
            return _fault_response(Fault(status=failing))
        if fault and fault.garbage:
            return Response(b"<html>upstream exploded</html>", status=200, content_type=fault.content_type)
        routes = {
            "/v1/chat/completions": ("POST", self._chat),
            "/v1/fim/completions": ("POST", self._fim),
            "/v1/embeddings": ("POST", self._embeddings),
            "/v1/models": ("GET", self._models),
        }
        model = payload.get("model") if isinstance(payload, dict) else None
        if isinstance(model, str) and not self.knows(model):
            return emulator_routes.invalid_model(model)
        responses = emulator_responses.dispatch(self, request, payload, raw, fault)
        if responses is not None:
            return responses
        extra = emulator_routes.dispatch(self, request, payload, raw)
        if extra is not None:
            return extra
        if request.path not in routes:
            return _json(404, {"detail": "Not Found"})
        method, handler = routes[request.path]
        if request.method != method:
            return _json(405, {"detail": "Method Not Allowed"})
        if payload is ValueError or (method == "POST" and not isinstance(payload, dict)):
            return _error(400, "Invalid JSON body", "invalid_request_error")
        return handler(payload or {}, raw, environ, fault)

    def knows(self, model: str) -> bool:
        return self.accept_any_model or model.startswith("ft:") or any(card["id"] == model for card in MODELS)

    def chat_answer(self, body: dict[str, Any], raw: bytes, environ: dict[str, Any] | None = None) -> Response:
        """A chat completion for another route's request (agents answer like chat, streamed too, with the
        request's stream faults when `environ` is the request's)."""
        environ = environ if environ is not None else {}
        return self._chat(body, raw, environ, environ.get(FAULT_KEY))

    # -- endpoints ----------------------------------------------------------------------------------------
    def _chat(self, body: dict[str, Any], raw: bytes, environ: dict[str, Any], fault: Fault | None) -> Response:
        problems = []
        if not isinstance(body.get("model"), str):
            problems.append(_problem(["body", "model"], "Field required", "missing"))
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            problems.append(_problem(["body", "messages"], "List should have at least 1 item", "too_short"))
        if problems:
            return _validation_error(problems)
        assert isinstance(messages, list)
        last_user = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), {})
        prompt_text = _text(last_user.get("content"))
        wants_tool = emulator_routes.wants_tool(body, prompt_text)
        content = "Emulated answer to: " + prompt_text[:200]
        content = emulator_routes.structured_content(body, content) or content
        prompt_tokens = max(1, sum(len(_text(m.get("content")).split()) for m in messages if isinstance(m, dict)))
        return self._completion(body, raw, environ, fault, content, prompt_tokens, wants_tool)

    def _fim(self, body: dict[str, Any], raw: bytes, environ: dict[str, Any], fault: Fault | None) -> Response:
        if not isinstance(body.get("model"), str) or not isinstance(body.get("prompt"), str):
            return _validation_error([_problem(["body", "prompt"], "Field required", "missing")])
        prompt = body["prompt"]
        digest = hashlib.sha256(raw).hexdigest()[:8]
        content = f"    return None  # emulated completion {digest}"
        prompt_tokens = max(1, len((prompt + " " + str(body.get("suffix") or "")).split()))
        return self._completion(body, raw, environ, fault, content, prompt_tokens, False)

    def _completion(
        self,
        body: dict[str, Any],
        raw: bytes,
        environ: dict[str, Any],
        fault: Fault | None,
        content: str,
        prompt_tokens: int,
        wants_tool: bool,
    ) -> Response:
        words = content.split(" ")
        if not emulator_routes.is_structured(body):  # filler would break the JSON
            words += [FILLER[i % len(FILLER)] for i in range(max(0, self.answer_words - len(words)))]
        finish_reason = "stop"
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and len(words) > max_tokens:
            words, finish_reason = words[:max_tokens], "length"
        content = " ".join(words)
        tool_calls = None
        if wants_tool:
            tool, arguments = emulator_routes.tool_call(body)
            call_id = hashlib.sha256(raw).hexdigest()[:9]
            tool_calls = [
                {"id": call_id, "type": "function", "function": {"name": tool, "arguments": arguments}, "index": 0}
            ]
            content, finish_reason = "", "tool_calls"
        completion_tokens = len(content.split()) if content else 1
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if cached := emulator_responses.cached_prompt_tokens(self, body, prompt_tokens):
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        answer_id = "emu-" + hashlib.sha256(raw).hexdigest()[:24]
        model = body["model"]
        requested_n = body.get("n")
        n = requested_n if isinstance(requested_n, int) and requested_n > 0 else 1
        if body.get("stream") is True:
            delay = fault.chunk_delay if fault and fault.chunk_delay is not None else self.stream_delay
            stream = _sse(answer_id, model, content, tool_calls, finish_reason, usage, n, fault, environ, delay)
            return Response(stream, status=200, content_type="text/event-stream")
        message: dict[str, Any] = {"role": "assistant", "content": content, "tool_calls": tool_calls}
        choices = [{"index": i, "message": message, "finish_reason": finish_reason} for i in range(n)]
        return _json(
            200,
            {
                "id": answer_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": choices,
                "usage": usage,
            },
        )

    def _embeddings(self, body: dict[str, Any], raw: bytes, environ: dict[str, Any], fault: Fault | None) -> Response:
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(body.get("model"), str) or not isinstance(inputs, list) or not inputs:
            return _validation_error([_problem(["body", "input"], "Field required", "missing")])
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(inputs):
            vector = embedding(str(text))
            value: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "embedding": value, "index": index})
        tokens = max(1, sum(len(str(text).split()) for text in inputs))
        return _json(
            200,
            {
                "id": "emu-" + hashlib.sha256(raw).hexdigest()[:24],
                "object": "list",
                "model": body["model"],
                "data": data,
                "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens},
            },
        )

    def _models(self, body: dict[str, Any], raw: bytes, environ: dict[str, Any], fault: Fault | None) -> Response:
        return _json(200, {"object": "list", "data": self.model_cards()})

    def model_cards(self) -> list[dict[str, Any]]:
        return [
            {
                "id": model["id"],
                "object": "model",
                "created": 1_700_000_000,
                "owned_by": "mistralai",
                "type": "base",
                "name": model["id"],
                "description": f"{model['id']} (emulated)",
                "max_context_length": model["context"],
                "aliases": [],
                "deprecation": None,
                "default_model_temperature": 0.3,
                "capabilities": {
                    "completion_chat": model["chat"],
                    "completion_fim": model["fim"],
                    "function_calling": model["chat"],
                    "fine_tuning": False,
                    "vision": False,
                    "classification": False,
                },
            }
            for model in MODELS
        ] + self._fine_tuned_cards()

    def _fine_tuned_cards(self) -> list[dict[str, Any]]:
        """The account's fine-tuned models (one per finished fine-tuning job), as Mistral lists them."""
        account = getattr(self, "account", None)
        jobs = list(account.ft_jobs.values()) if account is not None else []
        return [
            {
                "id": job["fine_tuned_model"],
                "object": "model",
                "created": job.get("created_at", 1_700_000_000),
                "owned_by": "emulated-org",
                "type": "fine-tuned",
                "name": None,
                "description": None,
                "max_context_length": 32768,
                "aliases": [],
                "deprecation": None,
                "job": job["id"],
                "root": job.get("model"),
                "archived": False,
                "capabilities": {"completion_chat": True, "completion_fim": False, "function_calling": True},
            }
            for job in jobs
            if job.get("fine_tuned_model")
        ]


def embedding(text: str) -> list[float]:
    """A deterministic unit vector for `text`."""
    values: list[float] = []
    counter = 0
    while len(values) < EMBEDDING_DIMENSIONS:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((byte - 127.5) / 127.5 for byte in digest)
        counter += 1
    values = values[:EMBEDDING_DIMENSIONS]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _sse(
    answer_id: str,
    model: str,
    content: str,
    tool_calls: list[dict[str, Any]] | None,
    finish_reason: str,
    usage: dict[str, Any],
    n: int,
    fault: Fault | None,
    environ: dict[str, Any],
    delay: float = 0.0,
) -> Iterator[bytes]:
    created = int(time.time())

    def chunk(deltas: dict[str, Any], finish: str | None, with_usage: bool = False) -> bytes:
        data: dict[str, Any] = {
            "id": answer_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": i, "delta": deltas, "finish_reason": finish} for i in range(n)],
        }
        if with_usage:
            data["usage"] = usage
        return f"data: {json.dumps(data)}\n\n".encode()

    pieces = re.findall(r"\S+\s*|\s+", content) or [""]  # one word per event, about a token each
    events = [chunk({"role": "assistant", "content": ""}, None)]
    if tool_calls:
        events.append(chunk({"tool_calls": tool_calls}, None))
    else:
        events.extend(chunk({"content": piece}, None) for piece in pieces)
    events.append(chunk({"content": ""}, finish_reason, with_usage=True))
    for index, event in enumerate(events):
        if fault and fault.stream_cut and index == 2:
            _drop(environ)
            return
        if fault and fault.stall and index == 2:
            time.sleep(fault.stall)
        if fault and fault.gate is not None and index == 2:
            fault.gate.wait(30)
        if fault and fault.stream_error and index == 2:
            error = {"object": "error", "message": "Internal server error", "type": "internal_server_error"}
            yield f"data: {json.dumps(error)}\n\n".encode()
            return
        if delay and index:
            time.sleep(delay)
        yield event
    yield b"data: [DONE]\n\n"


def _drop(environ: dict[str, Any]) -> None:
    """Shut the connection down mid-request: the client sees a transport error, not an HTTP answer."""
    connection = environ.get("werkzeug.socket")
    if connection is not None:
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json", headers=headers)


def _error(status: int, message: str, error_type: str, code: str | None = None) -> Response:
    return _json(status, {"object": "error", "message": message, "type": error_type, "param": None, "code": code})


def _problem(loc: list[str], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def _validation_error(problems: list[dict[str, Any]]) -> Response:
    return _json(
        422,
        {
            "object": "error",
            "message": {"detail": problems},
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
    )


def _fault_response(fault: Fault) -> Response:
    status = int(fault.status or 500)
    headers = {"Retry-After": _number(fault.retry_after)} if fault.retry_after is not None else None
    if fault.body is not None:
        return _json(status, fault.body, headers)
    if status == 429:
        body = {
            "object": "error",
            "message": "Rate limit exceeded",
            "type": "rate_limited",
            "param": None,
            "code": "1300",
        }
    elif status == 401:
        body = {"message": "Unauthorized", "request_id": "emulated"}
    elif status >= 500:
        body = {
            "object": "error",
            "message": "Internal server error",
            "type": "internal_server_error",
            "param": None,
            "code": None,
        }
    else:
        body = {
            "object": "error",
            "message": "Invalid request",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    return _json(status, body, headers)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
