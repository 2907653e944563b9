"""SSE bodies from complete answers and back: one cache entry serves both forms."""

from __future__ import annotations

import json
from typing import Any

from mistral_gateway.upstream import sse

ANSWER: dict[str, Any] = {
    "id": "abc",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello world", "tool_calls": None},
            "finish_reason": "stop",
        },
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def events(body: str) -> list[Any]:
    assert body.endswith(sse.DONE)
    return [json.loads(block[len("data: ") :]) for block in body.split("\n\n") if block and block != "data: [DONE]"]


def test_a_complete_answer_becomes_valid_chunks() -> None:
    chunks = events(sse.to_events(ANSWER))
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "abc" for c in chunks)
    assert all({"index", "delta", "finish_reason"} <= set(c["choices"][0]) for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["usage"]["total_tokens"] == 5


def test_round_trip_keeps_content_tool_calls_and_usage() -> None:
    with_tools = json.loads(json.dumps(ANSWER))
    with_tools["choices"][0]["message"]["tool_calls"] = [
        {"id": "call1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    ]
    with_tools["choices"][0]["finish_reason"] = "tool_calls"
    for answer in (ANSWER, with_tools):
        rebuilt = sse.assemble(events(sse.to_events(answer)))
        assert rebuilt is not None
        assert rebuilt["choices"][0]["message"]["content"] == answer["choices"][0]["message"]["content"]
        assert rebuilt["choices"][0]["finish_reason"] == answer["choices"][0]["finish_reason"]
        assert rebuilt["usage"] == answer["usage"]
        calls = rebuilt["choices"][0]["message"]["tool_calls"]
        expected = answer["choices"][0]["message"]["tool_calls"]
        assert (calls and calls[0]["function"]) == (expected and expected[0]["function"])


def test_tool_call_arguments_streamed_in_pieces_are_joined() -> None:
    chunks = [
        {
            "id": "a",
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": '{"a"'}}]},
                    "finish_reason": None,
                }
            ],
        },
        {
            "id": "a",
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]},
                    "finish_reason": "tool_calls",
                }
            ],
        },
    ]
    rebuilt = sse.assemble(chunks)
    assert rebuilt is not None
    assert rebuilt["choices"][0]["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 1}'}


def test_a_stream_without_a_finish_reason_is_not_a_complete_answer() -> None:
    cut = events(sse.to_events(ANSWER))[:-1]
    assert sse.assemble(cut) is None
    assert sse.assemble([]) is None


# --- splitting Mistral's byte stream into events ------------------------------------------------------------


def test_the_splitter_yields_whole_events_byte_for_byte_whatever_the_chunking() -> None:
    from mistral_gateway.upstream.sse import EventSplitter

    stream = b'data: {"a": 1}\n\ndata: {"b": 2}\r\n\r\n: comment\n\ndata: [DONE]\n\n'
    for size in (1, 3, 7, len(stream)):
        splitter = EventSplitter()
        events = [event for i in range(0, len(stream), size) for event in splitter.feed(stream[i : i + size])]
        assert b"".join(events) == stream and len(events) == 4 and splitter.pending == b""


def test_a_cut_event_stays_pending() -> None:
    from mistral_gateway.upstream.sse import EventSplitter

    splitter = EventSplitter()
    assert list(splitter.feed(b'data: {"a": 1}\n\ndata: {"tru')) == [b'data: {"a": 1}\n\n']
    assert splitter.pending == b'data: {"tru'


def test_event_data_joins_data_lines_and_skips_comments() -> None:
    from mistral_gateway.upstream.sse import event_data

    assert event_data(b"data: [DONE]\n\n") == "[DONE]"
    assert event_data(b'data:{"a":\ndata: 1}\n\n') == '{"a":\n1}'
    assert event_data(b": keep-alive\n\n") is None
