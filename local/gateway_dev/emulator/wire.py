"""What every route of the emulator shares: the scripted Fault, the request as a route sees it, and Mistral's
wire shapes of an answer and of its errors (JSON bodies, 404s, 422 validation errors, invalid models)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

FAULT_KEY = "gateway_dev.emulator.fault"  # the request's scripted Fault, in its WSGI environ
# Words that lengthen an answer to `answer_words`, so a paced stream lasts long enough to watch.
FILLER = ["and", "the", "emulator", "keeps", "writing", "one", "word", "at", "a", "time"]


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
class Call:
    """One request as a route sees it: its JSON (None when empty, INVALID when not JSON) and its fault."""

    request: Request
    payload: Any
    raw: bytes
    fault: Fault | None

    @property
    def path(self) -> str:
        return str(self.request.path)

    @property
    def method(self) -> str:
        return str(self.request.method)

    @property
    def body(self) -> dict[str, Any]:
        """The JSON object, or {} for anything else."""
        return self.payload if isinstance(self.payload, dict) else {}

    @property
    def environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = self.request.environ
        return environ

    def delay(self, pace: float) -> float:
        """Seconds between stream events: the fault's, else the emulator's pace."""
        return self.fault.chunk_delay if self.fault and self.fault.chunk_delay is not None else pace


INVALID = ValueError  # Call.payload of a body that is not JSON


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json", headers=headers)


def error(status: int, message: str, error_type: str, code: str | None = None) -> Response:
    return json_response(
        status, {"object": "error", "message": message, "type": error_type, "param": None, "code": code}
    )


def problem(loc: list[str], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def validation_error(problems: list[dict[str, Any]]) -> Response:
    body = {"object": "error", "message": {"detail": problems}, "type": "invalid_request_error", "param": None}
    return json_response(422, {**body, "code": None})


def missing(field_name: str) -> Response:
    """Mistral's 422 for a required field of the body that is absent."""
    return validation_error([problem(["body", field_name], "Field required", "missing")])


def not_found(kind: str) -> Response:
    """Mistral's 404 for an account resource (a file, a job, an agent...) it does not have."""
    body = {"object": "error", "message": f"{kind} not found", "type": "invalid_request_error", "code": "3000"}
    return json_response(404, body)


def invalid_json() -> Response:
    return error(400, "Invalid JSON body", "invalid_request_error")


def invalid_model(model: str, status: int = 400) -> Response:
    """What Mistral answers for a model it does not serve."""
    body = {"object": "error", "message": f"Invalid model: {model}", "type": "invalid_model", "param": None}
    return json_response(status, {**body, "code": "1500"})


def digest(raw: bytes, length: int = 24) -> str:
    return hashlib.sha256(raw).hexdigest()[:length]


def text(content: Any) -> str:
    """A message's text: its string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def drop(environ: dict[str, Any]) -> None:
    """Shut the connection down mid-request: the client sees a transport error, not an HTTP answer."""
    connection = environ.get("werkzeug.socket")
    if connection is not None:
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)


def fault_response(fault: Fault) -> Response:
    status = int(fault.status or 500)
    headers = {"Retry-After": _number(fault.retry_after)} if fault.retry_after is not None else None
    if fault.body is not None:
        return json_response(status, fault.body, headers)
    if status == 429:
        body: dict[str, Any] = {"object": "error", "message": "Rate limit exceeded", "type": "rate_limited"}
        body.update(param=None, code="1300")
    elif status == 401:
        body = {"message": "Unauthorized", "request_id": "emulated"}
    elif status >= 500:
        body = {"object": "error", "message": "Internal server error", "type": "internal_server_error"}
        body.update(param=None, code=None)
    else:
        body = {"object": "error", "message": "Invalid request", "type": "invalid_request_error"}
        body.update(param=None, code=None)
    return json_response(status, body, headers)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
