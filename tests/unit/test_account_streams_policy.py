"""Which pass-through requests stream event by event (account_streams.streams), and what the reader follows in
their events (the end, Mistral's own error, the model, the last usage)."""

from __future__ import annotations

import json

import pytest

from mistral_gateway.flow.account.streams import _Followed, streams


@pytest.mark.parametrize(
    ("subpath", "streamed"),
    [
        ("agents/completions", True),
        ("conversations", True),
        ("conversations/conv_1", True),
        ("conversations/conv_1/restart", True),
        ("/conversations/conv_1/", True),
        ("conversations/conv_1/history", False),
        ("conversations/conv_1/messages", False),
        ("agents/completions/x", False),
        ("agents", False),
        ("chat/completions", False),  # chat streams through streaming.py, not the pass-through
        ("responses", False),
    ],
)
def test_only_the_routes_mistral_streams_are_streamed(subpath: str, streamed: bool) -> None:
    assert streams(subpath, {"stream": True}) is streamed


@pytest.mark.parametrize("body", [{"stream": False}, {"stream": "true"}, {"stream": 1}, {}, ["stream"], None])
def test_only_a_literal_true_stream_field_streams(body: object) -> None:
    assert streams("conversations", body) is False


def test_a_conversation_turn_is_followed_to_its_done_event_and_usage() -> None:
    followed = _Followed()
    for event in (
        {"type": "conversation.response.started", "conversation_id": "conv_1"},
        {"type": "message.output.delta", "model": "mistral-small-latest", "content": "hi"},
        {"type": "conversation.response.done", "usage": {"prompt_tokens": 3, "completion_tokens": 1}},
    ):
        followed.follow(json.dumps(event))
    assert followed.done and not followed.failed
    assert followed.model == "mistral-small-latest" and followed.usage == {"prompt_tokens": 3, "completion_tokens": 1}


def test_mistral_errors_and_unreadable_events_are_followed_safely() -> None:
    followed = _Followed()
    for payload in ("not json", "[1, 2]", '{"usage": "lots"}', json.dumps({"type": "conversation.response.error"})):
        followed.follow(payload)
    assert followed.failed and not followed.done and followed.usage is None
    completion = _Followed()
    completion.follow('{"object": "chat.completion.chunk", "usage": {"prompt_tokens": 2, "completion_tokens": 5}}')
    completion.follow("[DONE]")
    assert completion.done and completion.usage == {"prompt_tokens": 2, "completion_tokens": 5}
