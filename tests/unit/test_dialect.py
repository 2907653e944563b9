"""The OpenAI SDK's dialect becomes Mistral's before validation, keying and the upstream call."""

from __future__ import annotations

from mistral_gateway.requests.dialect import mistral_chat


def test_openai_names_become_mistral_names() -> None:
    body = {"model": "m", "messages": [], "seed": 1, "max_completion_tokens": 9, "stream_options": {"x": 1}}
    assert mistral_chat(body) == {"model": "m", "messages": [], "random_seed": 1, "max_tokens": 9}


def test_mistral_values_win_and_plain_bodies_are_untouched() -> None:
    assert mistral_chat({"random_seed": 2, "seed": 1})["random_seed"] == 2
    body = {"model": "m", "messages": []}
    assert mistral_chat(body) is body


def test_developer_messages_become_system_messages() -> None:
    body = {"model": "m", "messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "x"}]}
    assert mistral_chat(body)["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "x"},
    ]
    assert body["messages"][0]["role"] == "developer"  # the caller's body is not mutated


def test_openai_only_labels_are_dropped() -> None:
    body = {
        "model": "m",
        "messages": [],
        "user": "u-1",
        "store": True,
        "safety_identifier": "s",
        "metadata": {"a": "b"},
    }
    assert mistral_chat(body) == {"model": "m", "messages": [], "metadata": {"a": "b"}}


def test_openai_service_tiers_are_dropped_and_mistrals_kept() -> None:
    assert "service_tier" not in mistral_chat({"model": "m", "service_tier": "default"})
    assert mistral_chat({"model": "m", "service_tier": "standard_only"})["service_tier"] == "standard_only"


def test_odd_values_are_left_for_validation() -> None:
    body = {"model": "m", "messages": [{"role": ["developer"]}], "service_tier": ["flex"]}
    assert mistral_chat(body) is body
