"""`/v1/agents`: create, list, get, update (a new version), delete, versions; and `POST
/v1/agents/completions`, answered like chat (streamed too) under the model name `agent-<id>`."""

from __future__ import annotations

import uuid
from typing import Any

from werkzeug.wrappers import Response

from gateway_dev.emulator import chat
from gateway_dev.emulator.account import Account, account_route, now_iso
from gateway_dev.emulator.wire import Call, invalid_json, json_response, missing, not_found


def dispatch(emulator: Any, call: Call) -> Response | None:
    if call.path == "/v1/agents/completions":
        return _completion(emulator, call) if call.method == "POST" else None
    return _crud(emulator, call)


def _completion(emulator: Any, call: Call) -> Response:
    if not isinstance(call.payload, dict):
        return invalid_json()
    if not isinstance(call.payload.get("agent_id"), str):
        return missing("agent_id")
    body = {**call.payload, "model": "agent-" + call.payload["agent_id"]}
    return chat.answer(emulator, body, call.raw, call.environ)


def _agents(emulator: Any, call: Call, rest: list[str]) -> Response | None:
    account: Account = emulator.account
    method, body = call.method, call.body
    if not rest:
        if method == "POST":
            if not body.get("model") or not body.get("name"):
                problem = {"object": "error", "message": "model and name", "type": "invalid_request_error"}
                return json_response(422, problem)
            agent = _new_agent(body)
            account.agents[agent["id"]] = [agent]
            return json_response(200, agent)
        if method == "GET":
            return json_response(200, [versions[-1] for versions in account.agents.values()])
        return None
    versions = account.agents.get(rest[0])
    if versions is None:
        return not_found("Agent")
    current = versions[-1]
    if len(rest) == 1:
        if method == "GET":
            return json_response(200, current)
        if method == "DELETE":
            del account.agents[rest[0]]
            return Response(b"", status=204)
        if method == "PATCH":
            number = len(versions)
            updated = {**current, **{k: v for k, v in body.items() if k in current}, "version": number}
            updated["versions"] = list(range(number + 1))
            updated["updated_at"] = now_iso()
            versions.append(updated)
            return json_response(200, updated)
    if rest[1:] == ["versions"] and method == "GET":
        return json_response(200, versions)
    if len(rest) == 3 and rest[1] == "versions" and method == "GET":
        chosen = next((v for v in versions if str(v["version"]) == rest[2]), None)
        return json_response(200, chosen) if chosen else not_found("Agent version")
    if rest[1:] == ["version"] and method == "PATCH":
        return json_response(200, current)
    return None


def _new_agent(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "agent",
        "id": "ag_" + uuid.uuid4().hex,
        "model": body["model"],
        "name": body["name"],
        "description": body.get("description"),
        "instructions": body.get("instructions"),
        "tools": body.get("tools") or [],
        "completion_args": body.get("completion_args") or {},
        "handoffs": body.get("handoffs"),
        "version": 0,
        "versions": [0],
        "created_at": now_iso(),
        "updated_at": now_iso(),
        "deployment_chat": False,
        "source": "api",
    }


_crud = account_route("agents", _agents)
