"""GET /v1/models and /v1/models/{id} under AccountRoutes=owned: each caller sees the base models and only the
fine-tuned models (`ft:...`) its own fine-tuning jobs made; two caller keys over HTTP with the mistralai SDK.

Mistral's list is cached once (it is the account's, the same for everyone) and filtered per request after the
cache, so one caller's view is never served to another.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mistralai.client import Mistral
from mistralai.client.errors import SDKError

KEYS = {"key-a-0123456789": "key-a", "key-b-0123456789": "key-b"}
BOUNDARY = "modelsboundary"


@pytest.fixture
def clients(keyed_http_gateway: Any) -> tuple[Mistral, Mistral]:
    url = keyed_http_gateway(KEYS)
    alice, bob = (Mistral(api_key=key, server_url=url) for key in KEYS)
    return alice, bob


def fine_tune(gateway: Any, caller: str) -> str:
    """A fine-tuning job for `caller` (through the gateway, so the ledger records it); its model's id."""
    line = json.dumps({"messages": [{"role": "user", "content": "teach"}, {"role": "assistant", "content": "ok"}]})
    raw = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="train.jsonl"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n{line}\n\r\n--{BOUNDARY}--\r\n"
    ).encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    uploaded = gateway.request("POST", "/v1/files", raw=raw, headers=headers, api_key_id=caller)
    assert uploaded.status == 200, uploaded.body
    job = {"model": "open-mistral-7b", "training_files": [{"file_id": uploaded.json["id"], "weight": 1}]}
    created = gateway.request("POST", "/v1/fine_tuning/jobs", job, api_key_id=caller)
    assert created.status == 200, created.body
    return str(created.json["fine_tuned_model"])


def fine_tuned_ids(client: Mistral) -> set[str]:
    return {card.id for card in client.models.list().data or [] if card.id.startswith("ft:")}


def refusal(call: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(SDKError) as refused:
        call()
    return int(refused.value.status_code), json.loads(refused.value.body)


def test_each_caller_lists_only_its_own_fine_tuned_models(clients, gateway, emulator) -> None:
    alice, bob = clients
    # Given a fine-tuned model of Alice's, and earlier jobs on the account that no caller of this gateway made
    alices = fine_tune(gateway, "key-a")
    assert alices in {card["id"] for card in emulator.model_cards()}
    # When each lists the models (Alice first: her call fills the shared cache)
    emulator.reset()
    listed_by_alice = fine_tuned_ids(alice)
    listed_by_bob = fine_tuned_ids(bob)
    # Then Alice sees hers and Bob none; base models stay visible to both
    assert listed_by_alice == {alices} and listed_by_bob == set()
    base = {card["id"] for card in emulator.model_cards() if not card["id"].startswith("ft:")}
    assert base <= {card.id for card in bob.models.list().data or []}
    # ...and the list came from Mistral once: cached as Mistral's, filtered for each caller after the cache
    assert emulator.calls("/v1/models") == 1
    # When Bob fine-tunes a model of his own, each still sees only its own
    bobs = fine_tune(gateway, "key-b")
    fresh = {"Cache-Control": "no-cache"}  # past the 5-minute listing cache, which predates Bob's model
    for caller, own in (("key-b", bobs), ("key-a", alices)):
        listed = gateway.request("GET", "/v1/models", headers=fresh, api_key_id=caller).json["data"]
        assert {card["id"] for card in listed if card["id"].startswith("ft:")} == {own}
    assert alices not in fine_tuned_ids(bob) and bobs not in fine_tuned_ids(alice)


def test_another_callers_fine_tuned_model_card_is_the_404_of_a_model_that_does_not_exist(
    clients, gateway, emulator
) -> None:
    alice, bob = clients
    alices = fine_tune(gateway, "key-a")
    assert alice.models.retrieve(model_id=alices).id == alices
    emulator.reset()
    # When Bob asks for Alice's model's card, and for a fine-tuned model nobody has
    foreign_status, foreign = refusal(lambda: bob.models.retrieve(model_id=alices))
    missing_id = alices.rsplit(":", 1)[0] + ":nobodys"
    missing_status, missing = refusal(lambda: bob.models.retrieve(model_id=missing_id))
    # Then both are the same 404 (only the id they name differs), and Mistral was never asked
    assert foreign_status == missing_status == 404
    assert json.loads(json.dumps(foreign).replace(alices, missing_id)) == missing
    assert emulator.calls() == 0
    # And Alice's card, now cached, is still not Bob's
    assert refusal(lambda: bob.models.retrieve(model_id=alices))[0] == 404


def test_shared_mode_lists_every_fine_tuned_model(gateway, monkeypatch, reconfigure) -> None:
    alices = fine_tune(gateway, "alice")
    monkeypatch.setenv("ACCOUNT_ROUTES", "shared")
    reconfigure()
    listed = gateway.request("GET", "/v1/models", api_key_id="bob").json["data"]
    assert alices in {card["id"] for card in listed}
    assert gateway.request("GET", f"/v1/models/{alices}", api_key_id="bob").status == 200
