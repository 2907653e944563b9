"""`/v1/conversations`: start, append, restart (streamed with stream=true), list, get, delete, history and
messages. Each turn is answered like chat; a stream is Mistral's: started, the answer's words as deltas, done."""

from __future__ import annotations

import json
import uuid
from typing import Any

from werkzeug.wrappers import Response

from gateway_dev.emulator import chat, sse
from gateway_dev.emulator.account import Account, account_route, now_iso
from gateway_dev.emulator.wire import Call, json_response, not_found


def _conversations(emulator: Any, call: Call, rest: list[str]) -> Response | None:
    account: Account = emulator.account
    method, body = call.method, call.body
    if not rest:
        if method == "POST":
            if body.get("agent_id") and body["agent_id"] not in account.agents:
                return not_found("Agent")
            return _turn(emulator, call, new_conversation(account, body))
        if method == "GET":
            return json_response(200, [_view(c) for c in account.conversations.values()])
        return None
    conversation = account.conversations.get(rest[0])
    if conversation is None:
        return not_found("Conversation")
    if len(rest) == 1:
        if method == "GET":
            return json_response(200, _view(conversation))
        if method == "DELETE":
            del account.conversations[rest[0]]
            return Response(b"", status=204)
        if method == "POST":  # append
            return _turn(emulator, call, conversation)
    entries = conversation["entries"]
    if rest[1:] == ["history"] and method == "GET":
        history = {"object": "conversation.history", "conversation_id": rest[0], "entries": entries}
        return json_response(200, history)
    if rest[1:] == ["messages"] and method == "GET":
        messages = [e for e in entries if e["type"].startswith("message")]
        return json_response(200, {"object": "conversation.messages", "conversation_id": rest[0], "messages": messages})
    if rest[1:] == ["restart"] and method == "POST":
        cut = next((i for i, e in enumerate(entries) if e["id"] == body.get("from_entry_id")), None)
        if cut is None:
            return not_found("Entry")
        branch = new_conversation(account, {"model": conversation["model"], "agent_id": conversation.get("agent_id")})
        branch["entries"] = [dict(e) for e in entries[: cut + 1]]
        return _turn(emulator, call, branch)
    return None


def _turn(emulator: Any, call: Call, conversation: dict[str, Any]) -> Response:
    turn = answer_turn(emulator, conversation, call.body.get("inputs"))
    if not call.body.get("stream"):
        return json_response(200, turn)
    return _streamed(turn, call.delay(emulator.stream_delay), call)


def _view(conversation: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in conversation.items() if key != "entries"}


def new_conversation(account: Account, body: dict[str, Any]) -> dict[str, Any]:
    agent_id = body.get("agent_id")
    model = body.get("model")
    if isinstance(agent_id, str) and agent_id in account.agents:
        model = account.agents[agent_id][-1]["model"]
    conversation = {
        "object": "conversation",
        "id": "conv_" + uuid.uuid4().hex,
        "created_at": now_iso(),
        "updated_at": now_iso(),
        "model": model or "mistral-small-latest",
        "name": body.get("name"),
        "description": body.get("description"),
        "instructions": body.get("instructions"),
        "tools": body.get("tools") or [],
        "completion_args": body.get("completion_args") or {},
        "entries": [],
    }
    if agent_id:
        conversation["agent_id"] = agent_id
        conversation["agent_version"] = 0
    account.conversations[str(conversation["id"])] = conversation
    return conversation


def answer_turn(emulator: Any, conversation: dict[str, Any], inputs: Any) -> dict[str, Any]:
    """Append the inputs and an assistant answer; the turn's ConversationResponse."""
    entries = conversation["entries"]
    if isinstance(inputs, str):
        inputs = [{"role": "user", "content": inputs}]
    for item in inputs if isinstance(inputs, list) else []:
        if isinstance(item, dict):
            entries.append(
                {
                    "object": "entry",
                    "type": "message.input",
                    "role": item.get("role", "user"),
                    "content": item.get("content", ""),
                    "id": "msg_" + uuid.uuid4().hex,
                    "created_at": now_iso(),
                }
            )
    messages = [{"role": e["role"], "content": e["content"]} for e in entries if e["type"].startswith("message")]
    body = {"model": conversation.get("model") or "mistral-small-latest", "messages": messages}
    answer = json.loads(chat.answer(emulator, body, json.dumps(body).encode()).get_data())
    output = {
        "object": "entry",
        "type": "message.output",
        "role": "assistant",
        "content": answer["choices"][0]["message"]["content"],
        "id": "msg_" + uuid.uuid4().hex,
        "created_at": now_iso(),
        "completed_at": now_iso(),
        "model": body["model"],
        "agent_id": conversation.get("agent_id"),
    }
    entries.append(output)
    conversation["updated_at"] = now_iso()
    usage = {**answer["usage"], "connector_tokens": None}
    return {
        "object": "conversation.response",
        "conversation_id": conversation["id"],
        "outputs": [output],
        "usage": usage,
    }


def _streamed(turn: dict[str, Any], delay: float, call: Call) -> Response:
    """A conversation turn as Mistral streams it: started, the answer's words as deltas, done."""
    output = turn["outputs"][0]
    events = [_event({"type": "conversation.response.started", "conversation_id": turn["conversation_id"]})]
    for index, word in enumerate(str(output["content"]).split(" ")):
        delta = {
            "type": "message.output.delta",
            "id": output["id"],
            "output_index": 0,
            "content_index": 0,
            "model": output["model"],
            "agent_id": output.get("agent_id"),
            "role": "assistant",
            "content": word if index == 0 else " " + word,
            "created_at": output["created_at"],
        }
        events.append(_event(delta))
    events.append(_event({"type": "conversation.response.done", "usage": turn["usage"]}))
    error = _event({"type": "conversation.response.error", "message": "Internal server error", "code": 500})
    return sse.stream(events, call.fault, delay, error)


def _event(data: dict[str, Any]) -> bytes:
    return sse.event(data, data["type"])


dispatch = account_route("conversations", _conversations)
