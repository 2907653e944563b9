"""The emulator beyond chat: structured output, tool arguments, model cards, unknown models, and the routes
the gateway caches or passes through (OCR, moderations, classifications, agents, transcriptions, files).

Every answer is deterministic (derived from the request's bytes) and in Mistral's wire shape, so a client's
own parser (the SDKs' models, LangChain's output parsers) accepts it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from gateway_dev.emulator.schema_instance import instance

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


def json_response(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def invalid_model(model: str, status: int = 400) -> Response:
    """What Mistral answers for a model it does not serve."""
    body = {"object": "error", "message": f"Invalid model: {model}", "type": "invalid_model", "param": None}
    return json_response(status, {**body, "code": "1500"})


def digest(raw: bytes, length: int = 24) -> str:
    return hashlib.sha256(raw).hexdigest()[:length]


# --- chat: structured output and tool calls ---------------------------------------------------------------


def structured_content(body: dict[str, Any], text: str) -> str | None:
    """The answer's content under `response_format`: a JSON object, or an instance of the given schema."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_object":
        return json.dumps({"answer": text})
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return json.dumps(instance(schema))
    return None


def is_structured(body: dict[str, Any]) -> bool:
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema")


def wants_tool(body: dict[str, Any], prompt_text: str) -> bool:
    """Whether to answer with a tool call. With tool_choice "auto" (or none given) it calls one when the user
    spoke last and answers in text after a tool's result: the loop an agent runs (LlamaIndex's structured
    output relies on "auto"), made deterministic."""
    choice = body.get("tool_choice")
    if not body.get("tools") or choice == "none":
        return False
    if choice in ("any", "required") or isinstance(choice, dict) or "call a tool" in prompt_text:
        return True
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    return isinstance(last, dict) and last.get("role") == "user"


def tool_call(body: dict[str, Any]) -> tuple[str, str]:
    """(name, JSON arguments) for the named tool_choice or the first tool, valid against its parameters."""
    tools = [tool.get("function") or {} for tool in body["tools"] if isinstance(tool, dict)]
    choice = body.get("tool_choice")
    wanted = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    function = next((tool for tool in tools if tool.get("name") == wanted), tools[0] if tools else {})
    return str(function.get("name", "tool")), json.dumps(instance(function.get("parameters") or {"type": "object"}))


# --- other routes -------------------------------------------------------------------------------------------

Handler = Callable[[Any, dict[str, Any], bytes, Request], Response]


def dispatch(emulator: Any, request: Request, payload: Any, raw: bytes) -> Response | None:
    """The answer for a route of this module, or None (the emulator's own routes, or its 404)."""
    path, method = request.path, request.method
    if path.startswith("/v1/models/") and method == "GET":
        return _model_card(emulator, path.removeprefix("/v1/models/"))
    if path == "/v1/audio/transcriptions" and method == "POST":
        return _transcription(request)
    from gateway_dev.emulator import account as emulator_account

    account = emulator_account.dispatch(emulator, request, payload)
    if account is not None:
        return account
    handler = _JSON_ROUTES.get(path)
    if handler is None or method != "POST":
        return None
    if not isinstance(payload, dict):
        return json_response(400, {"object": "error", "message": "Invalid JSON body", "type": "invalid_request_error"})
    return handler(emulator, payload, raw, request)


def _model_card(emulator: Any, model_id: str) -> Response:
    cards = {card["id"]: card for card in emulator.model_cards()}
    if model_id not in cards:
        return invalid_model(model_id, status=404)
    return json_response(200, cards[model_id])


def _ocr(emulator: Any, body: dict[str, Any], raw: bytes, request: Request) -> Response:
    document = body.get("document")
    if not isinstance(document, dict):
        return _missing("document")
    reference = json.dumps(document, sort_keys=True).encode()
    page = {
        "index": 0,
        "markdown": f"# Emulated OCR\n\nDocument {digest(reference, 12)} ({document.get('type', 'document')}).",
        "images": [],
        "dimensions": {"dpi": 200, "height": 2200, "width": 1700},
    }
    usage = {"pages_processed": 1, "doc_size_bytes": len(reference)}
    return json_response(200, {"pages": [page], "model": body.get("model"), "usage_info": usage})


def _moderations(emulator: Any, body: dict[str, Any], raw: bytes, request: Request) -> Response:
    inputs = body.get("input") if "input" in body else body.get("inputs")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        return _missing("input")
    if request.path == "/v1/chat/moderations" and all(isinstance(item, dict) for item in inputs):
        inputs = [inputs]  # one conversation
    results = []
    for item in inputs:
        text = json.dumps(item) if not isinstance(item, str) else item
        flagged = {_FLAGGING_WORDS[word] for word in _FLAGGING_WORDS if word in text.lower()}
        scores = {name: (0.97 if name in flagged else _score(text, name) / 10) for name in MODERATION_CATEGORIES}
        results.append(
            {"categories": {name: name in flagged for name in MODERATION_CATEGORIES}, "category_scores": scores}
        )
    return json_response(200, {"id": "emu-" + digest(raw), "model": body.get("model"), "results": results})


def _classifications(emulator: Any, body: dict[str, Any], raw: bytes, request: Request) -> Response:
    inputs = body.get("input") if "input" in body else body.get("inputs")
    if isinstance(inputs, str | dict):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        return _missing("input")
    results = []
    for item in inputs:
        text = json.dumps(item)
        positive = _score(text, "positive")
        results.append({"sentiment": {"scores": {"positive": positive, "negative": round(1 - positive, 6)}}})
    return json_response(200, {"id": "emu-" + digest(raw), "model": body.get("model"), "results": results})


def _agents(emulator: Any, body: dict[str, Any], raw: bytes, request: Request) -> Response:
    if not isinstance(body.get("agent_id"), str):
        return _missing("agent_id")
    response: Response = emulator.chat_answer({**body, "model": "agent-" + body["agent_id"]}, raw, request.environ)
    return response


def _transcription(request: Request) -> Response:
    upload = request.files.get("file")
    model = request.form.get("model")
    if upload is None or not model:
        return _missing("file")
    content = upload.read()
    text = f"Emulated transcription of {len(content)} bytes ({digest(content, 12)})."
    usage = {"prompt_tokens": 0, "completion_tokens": len(text.split()), "total_tokens": len(text.split())}
    return json_response(200, {"model": model, "text": text, "language": "en", "segments": [], "usage": usage})


def _score(text: str, salt: str) -> float:
    return round(int(hashlib.sha256(f"{salt}:{text}".encode()).hexdigest()[:6], 16) / 0xFFFFFF, 6)


def _missing(field: str) -> Response:
    problem = {"loc": ["body", field], "msg": "Field required", "type": "missing"}
    return json_response(422, {"object": "error", "message": {"detail": [problem]}, "type": "invalid_request_error"})


_JSON_ROUTES: dict[str, Handler] = {
    "/v1/ocr": _ocr,
    "/v1/moderations": _moderations,
    "/v1/chat/moderations": _moderations,
    "/v1/classifications": _classifications,
    "/v1/chat/classifications": _classifications,
    "/v1/agents/completions": _agents,
}
