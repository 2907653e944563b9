"""The emulated Mistral account's state, which the account routes (files, batch, fine_tuning, agents,
conversations, libraries, audio's voices) read and change.

One in-memory account, as Mistral's is: every route sees everything (isolation is the gateway's job).
Shapes follow the mistralai 3.7 SDK's models, so `Mistral(server_url=...)` parses every answer. Ids are random
(uuid4), as Mistral's are, so two uploads of the same bytes are two files.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Response

from gateway_dev.emulator.wire import Call, json_response


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Account:
    batch_seconds: float = 2.0  # a batch job completes this long after it was created (batch.py)
    files: dict[str, tuple[dict[str, Any], bytes]] = field(default_factory=dict)
    batch_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    ft_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    agents: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # id -> versions
    conversations: dict[str, dict[str, Any]] = field(default_factory=dict)
    libraries: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # library -> id -> document
    voices: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def add_file(self, filename: str, content: bytes, purpose: str, source: str = "upload") -> dict[str, Any]:
        kinds = {"mistral": "batch_result"}
        sample_type = kinds.get(source, "batch_request" if purpose == "batch" else "ocr_input")
        meta = {
            "id": str(uuid.uuid4()),
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "sample_type": sample_type,
            "source": source,
            "num_lines": content.count(b"\n") if purpose == "batch" else None,
            "mimetype": "application/jsonl" if filename.endswith(".jsonl") else "application/octet-stream",
            "signature": None,
        }
        self.files[str(meta["id"])] = (meta, content)
        return meta


Handler = Callable[[Any, Call, list[str]], Response | None]


def account_route(prefix: str, handler: Handler) -> Callable[[Any, Call], Response | None]:
    """The dispatch of the routes under `/v1/<prefix>`: `handler(emulator, call, the path's rest)`, under the
    account's lock; None for another path."""

    def dispatch(emulator: Any, call: Call) -> Response | None:
        rest = route_parts(call, prefix)
        if rest is None:
            return None
        with emulator.account.lock:
            return handler(emulator, call, rest)

    return dispatch


def route_parts(call: Call, prefix: str) -> list[str] | None:
    """The path's parts after `/v1/<prefix>` (e.g. ["abc", "content"] for /v1/files/abc/content), or None
    when the path is not under it."""
    head = ["v1", *prefix.split("/")]
    parts = call.path.strip("/").split("/")
    return parts[len(head) :] if parts[: len(head)] == head else None


def listing(data: list[Any]) -> dict[str, Any]:
    return {"data": data, "object": "list", "total": len(data)}


def file_required() -> Response:
    return json_response(422, {"object": "error", "message": "file is required", "type": "invalid_request_error"})
