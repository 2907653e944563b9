"""`POST /v1/audio/transcriptions` (a deterministic transcript of the uploaded bytes) and `/v1/audio/voices`
(create, list, get, delete)."""

from __future__ import annotations

import uuid
from typing import Any

from werkzeug.wrappers import Response

from gateway_dev.emulator.account import Account, account_route, now_iso
from gateway_dev.emulator.wire import Call, digest, json_response, missing, not_found


def dispatch(emulator: Any, call: Call) -> Response | None:
    if call.path == "/v1/audio/transcriptions" and call.method == "POST":
        return _transcription(call)
    return _voice_routes(emulator, call)


def _transcription(call: Call) -> Response:
    upload = call.request.files.get("file")
    model = call.request.form.get("model")
    if upload is None or not model:
        return missing("file")
    content = upload.read()
    text = f"Emulated transcription of {len(content)} bytes ({digest(content, 12)})."
    usage = {"prompt_tokens": 0, "completion_tokens": len(text.split()), "total_tokens": len(text.split())}
    return json_response(200, {"model": model, "text": text, "language": "en", "segments": [], "usage": usage})


def _voices(emulator: Any, call: Call, rest: list[str]) -> Response | None:
    account: Account = emulator.account
    method = call.method
    if not rest:
        if method == "POST":
            created = {"id": str(uuid.uuid4()), "name": call.body.get("name") or "voice", "created_at": now_iso()}
            account.voices[created["id"]] = created
            return json_response(200, created)
        if method == "GET":
            items = list(account.voices.values())
            page = {"items": items, "total": len(items), "page": 0, "page_size": 10, "total_pages": 1}
            return json_response(200, page)
        return None
    voice = account.voices.get(rest[0])
    if voice is None:
        return not_found("Voice")
    if len(rest) == 1 and method == "GET":
        return json_response(200, voice)
    if len(rest) == 1 and method == "DELETE":
        del account.voices[rest[0]]
        return json_response(200, voice)
    return None


_voice_routes = account_route("audio/voices", _voices)
