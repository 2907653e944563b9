"""`GET /v1/models` and `GET /v1/models/{id}`: the models the emulator serves, and the account's fine-tuned
ones, as Mistral's model cards."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from gateway_dev.emulator.wire import Call, invalid_model, json_response

MODELS: list[dict[str, Any]] = [
    {"id": "mistral-small-latest", "fim": False, "chat": True, "context": 131072},
    {"id": "mistral-large-latest", "fim": False, "chat": True, "context": 131072},
    {"id": "codestral-latest", "fim": True, "chat": True, "context": 262144},
    {"id": "mistral-embed", "fim": False, "chat": False, "context": 8192},
    {"id": "mistral-ocr-latest", "fim": False, "chat": False, "context": 16384},
    {"id": "mistral-moderation-latest", "fim": False, "chat": False, "context": 8192},
]


def dispatch(emulator: Any, call: Call) -> Response | None:
    if call.path == "/v1/models":
        if call.method != "GET":
            return json_response(405, {"detail": "Method Not Allowed"})
        return json_response(200, {"object": "list", "data": emulator.model_cards()})
    if call.path.startswith("/v1/models/") and call.method == "GET":
        model_id = call.path.removeprefix("/v1/models/")
        cards = {card["id"]: card for card in emulator.model_cards()}
        return json_response(200, cards[model_id]) if model_id in cards else invalid_model(model_id, status=404)
    return None


def base_cards() -> list[dict[str, Any]]:
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
    ]


def fine_tuned_cards(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The account's fine-tuned models (one per finished fine-tuning job), as Mistral lists them."""
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


def known(model: str, accept_any: bool) -> bool:
    return accept_any or model.startswith("ft:") or any(card["id"] == model for card in MODELS)
