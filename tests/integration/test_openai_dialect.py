"""OpenAI's labels and `developer` role through the gateway: accepted, not sent to Mistral, not in the cache key."""

from __future__ import annotations


def test_openai_labels_and_developer_messages_share_the_mistral_entry(gateway, emulator) -> None:
    mistral = {
        "model": "mistral-small-latest",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "dialect check"}],
    }
    openai = {
        **mistral,
        "messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "dialect check"}],
        "user": "end-user-1",
        "store": True,
        "safety_identifier": "hashed-user",
        "service_tier": "default",
    }
    first = gateway.chat(openai)
    assert first.status == 200 and first.header("X-Cache") == "MISS"
    assert emulator.requests[-1].json["messages"][0]["role"] == "system"
    assert {"user", "store", "safety_identifier", "service_tier"}.isdisjoint(emulator.requests[-1].json)
    assert gateway.chat({**openai, "user": "end-user-2", "store": False}).header("X-Cache") == "HIT"
    assert gateway.chat(mistral).header("X-Cache") == "HIT"
    assert emulator.calls("/v1/chat/completions") == 1
