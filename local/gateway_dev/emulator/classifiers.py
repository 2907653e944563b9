"""`POST /v1/moderations`, `/v1/chat/moderations`, `/v1/classifications` and `/v1/chat/classifications`:
deterministic scores from the input's text, with words that flag a category for a deterministic positive."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from werkzeug.wrappers import Response

from gateway_dev.emulator.wire import Call, digest, invalid_json, json_response, missing

MODERATION_CATEGORIES = (
    "sexual",
    "hate_and_discrimination",
    "violence_and_threats",
    "dangerous_and_criminal_content",
    "selfharm",
    "health",
    "financial",
    "law",
    "pii",
)
# Words that flag a category, so tests can get a deterministic positive.
_FLAGGING_WORDS = {"attack": "violence_and_threats", "bomb": "dangerous_and_criminal_content"}
MODERATIONS = ("/v1/moderations", "/v1/chat/moderations")
CLASSIFICATIONS = ("/v1/classifications", "/v1/chat/classifications")


def dispatch(emulator: Any, call: Call) -> Response | None:
    if call.path not in MODERATIONS + CLASSIFICATIONS or call.method != "POST":
        return None
    if not isinstance(call.payload, dict):
        return invalid_json()
    body = call.payload
    inputs = body.get("input") if "input" in body else body.get("inputs")
    moderation = call.path in MODERATIONS
    if isinstance(inputs, str) or (not moderation and isinstance(inputs, dict)):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        return missing("input")
    if call.path == "/v1/chat/moderations" and all(isinstance(item, dict) for item in inputs):
        inputs = [inputs]  # one conversation
    results = [_moderation(item) if moderation else _sentiment(item) for item in inputs]
    return json_response(200, {"id": "emu-" + digest(call.raw), "model": body.get("model"), "results": results})


def _moderation(item: Any) -> dict[str, Any]:
    text = json.dumps(item) if not isinstance(item, str) else item
    flagged = {_FLAGGING_WORDS[word] for word in _FLAGGING_WORDS if word in text.lower()}
    scores = {name: (0.97 if name in flagged else _score(text, name) / 10) for name in MODERATION_CATEGORIES}
    return {"categories": {name: name in flagged for name in MODERATION_CATEGORIES}, "category_scores": scores}


def _sentiment(item: Any) -> dict[str, Any]:
    positive = _score(json.dumps(item), "positive")
    return {"sentiment": {"scores": {"positive": positive, "negative": round(1 - positive, 6)}}}


def _score(text: str, salt: str) -> float:
    return round(int(hashlib.sha256(f"{salt}:{text}".encode()).hexdigest()[:6], 16) / 0xFFFFFF, 6)
