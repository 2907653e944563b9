"""Ids inside request bodies that name account resources: each must be the caller's own (AccountRoutes=owned).

A file id in OCR's document, a batch job's input_files, fine-tuning's training/validation files, an
agent_id (agents completions, conversations, batch jobs), a conversation_id, the libraries of an agent's
document_library tool, a fine-tuned model (`ft:...`) on any route that names a model. Another caller's id,
or one the ledger does not know, is the same 404 as in a path, before Mistral is called.
"""

from __future__ import annotations

import json
from typing import Any

from mistral_gateway.platform.errors import InvalidRequest
from mistral_gateway.requests.ownership import ID_PATTERN, AccountRoute

FINE_TUNED_PREFIX = "ft:"


def in_body(route: AccountRoute | None, request: Any) -> list[tuple[str, str]]:
    """(kind, id) pairs the request's JSON body refers to (empty for multipart and bodyless requests)."""
    body = _json(request.body)
    if not body:
        return []
    return of_body(body)


def of_body(body: dict[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    model = body.get("model")
    if isinstance(model, str) and model.startswith(FINE_TUNED_PREFIX):
        found.append(("model", model))
    for name, kind in (("agent_id", "agent"), ("conversation_id", "conversation")):
        if name in body and body[name] is not None:
            found.append((kind, _id(body[name], name)))
    document = body.get("document")
    if isinstance(document, dict) and document.get("file_id") is not None:
        found.append(("file", _id(document["file_id"], "document.file_id")))
    for name in ("input_files", "training_files", "validation_files"):
        for item in _list(body.get(name), name):
            value = item.get("file_id") if isinstance(item, dict) else item
            found.append(("file", _id(value, name)))
    for tool in _list(body.get("tools"), "tools"):
        if isinstance(tool, dict) and tool.get("type") == "document_library":
            for library in _list(tool.get("library_ids"), "tools.library_ids"):
                found.append(("library", _id(library, "tools.library_ids")))
    return found


def _id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise InvalidRequest(f"{name} must be a valid Mistral id.", param=name, code="invalid_id")
    return value


def _list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"{name} must be a list.", param=name)
    return value


def _json(raw: bytes | None) -> dict[str, Any]:
    try:
        data = json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
