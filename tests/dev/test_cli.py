"""The chat CLI against the gateway over HTTP: streaming, HIT/MISS and tokens per turn, commands, clean errors."""

from __future__ import annotations

import io
from typing import Any

import pytest

from gateway_dev.ops import cli

CALLER_KEY = "cli-caller-key-secret-123"


@pytest.fixture
def guarded_gateway(keyed_http_gateway: Any) -> str:
    """The API over HTTP with caller keys enforced, as `make serve` runs it."""
    return str(keyed_http_gateway({CALLER_KEY: "cli-caller"}))


def run_cli(url: str, *lines: str, key: str = CALLER_KEY, extra: tuple[str, ...] = ()) -> str:
    out = io.StringIO()
    argv = ["chat", "--url", url, "--key", key, "--model", "mistral-large-latest", "--temperature", "0.2", *extra]
    assert cli.main(argv, stdin=io.StringIO("".join(f"{line}\n" for line in lines)), out=out) == 0
    return out.getvalue()


def test_a_repeated_question_is_a_miss_then_a_hit_with_tokens(guarded_gateway: str, emulator: Any) -> None:
    # Given a fresh conversation, when the same first question is asked in two sessions
    first = run_cli(guarded_gateway, "What is a gateway?")
    second = run_cli(guarded_gateway, "What is a gateway?")
    # Then the answer streams in, then the status line shows MISS, then HIT, with token counts
    assert "mistral-large-latest> Emulated answer to: What is a gateway?" in first
    assert "[MISS · " in first and " out tokens · " in first
    assert "[HIT · " in second
    assert emulator.calls("/v1/chat/completions") == 1
    assert CALLER_KEY not in first + second


def test_the_conversation_is_multi_turn_and_commands_change_it(guarded_gateway: str, emulator: Any) -> None:
    output = run_cli(
        guarded_gateway, "first question", "second question", "/model codestral-latest", "/temperature 0.7",
        "third question", "/reset", "after reset", "/temperature hot", "/quit", "never sent",
    )  # fmt: skip
    sent = [request.json for request in emulator.requests if request.path == "/v1/chat/completions"]
    assert [len(body["messages"]) for body in sent] == [1, 3, 5, 1]  # history grows, /reset clears it
    assert sent[1]["messages"][1]["role"] == "assistant"
    assert (sent[2]["model"], sent[2]["temperature"]) == ("codestral-latest", 0.7)
    assert sent[0]["temperature"] == 0.2
    assert "temperature must be a number from 0 to 2" in output
    assert "never sent" not in str(sent)


def test_a_wrong_key_is_one_clear_line_and_the_session_goes_on(guarded_gateway: str, emulator: Any) -> None:
    output = run_cli(guarded_gateway, "hello", "/quit", key="not-the-key")
    assert "error 401" in output and "check the caller key" in output
    assert "Traceback" not in output and "not-the-key" not in output
    assert emulator.calls("/v1/chat/completions") == 0


def test_an_unreachable_gateway_is_a_clear_message() -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    output = run_cli(url, "hello")
    assert "cannot reach the gateway" in output and "Traceback" not in output


def test_the_key_comes_from_the_environment_or_a_hidden_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_API_KEY", "from-env")
    assert cli.read_key(None) == "from-env"
    assert cli.read_key("explicit") == "explicit"
    monkeypatch.delenv("GATEWAY_API_KEY")
    monkeypatch.setattr("sys.stdin", _Tty())
    assert cli.read_key(None, prompt=lambda text: " typed ") == "typed"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True
