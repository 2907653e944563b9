"""A terminal chatbot against the gateway (or Mistral itself): the seed tutorial's chat loop, with cache info.

    python -m gateway_dev.ops.cli chat --url http://127.0.0.1:3000 --model mistral-large-latest --temperature 0.2

The caller key comes from --key, GATEWAY_API_KEY, or a prompt that does not echo; it is never printed.
Answers stream as they arrive; after each one a status line shows the cache status (HIT/MISS/BYPASS) and
the token usage. Commands: /model NAME, /temperature X, /reset, /help, /quit.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

DEFAULT_URL = "http://127.0.0.1:3000"
HELP = "commands: /model NAME  /temperature X (0-2)  /reset  /help  /quit"


@dataclass
class Conversation:
    model: str
    temperature: float
    system: str | None = None
    messages: list[dict[str, str]] = field(default_factory=list)

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []


@dataclass
class Turn:
    text: str
    cache: str
    usage: dict[str, int]
    seconds: float


class ChatClient:
    """The official mistralai SDK pointed at the gateway, remembering each answer's X-Cache header."""

    def __init__(self, url: str, key: str) -> None:
        import httpx2
        from mistralai.client import Mistral

        self._cache_status = "-"

        def remember(response: Any) -> None:
            self._cache_status = response.headers.get("x-cache", "-")

        http = httpx2.Client(event_hooks={"response": [remember]}, timeout=60)
        self._sdk = Mistral(api_key=key, server_url=url.rstrip("/"), client=http)

    def ask(self, conversation: Conversation, on_text: Callable[[str], None]) -> Turn:
        started = time.perf_counter()
        parts: list[str] = []
        usage: dict[str, int] = {}
        stream = self._sdk.chat.stream(
            model=conversation.model,
            messages=conversation.messages,  # type: ignore[arg-type]
            temperature=conversation.temperature,
        )
        for event in stream:
            chunk = event.data
            for choice in chunk.choices:
                delta = choice.delta.content
                if isinstance(delta, str) and delta:
                    parts.append(delta)
                    on_text(delta)
            if chunk.usage is not None:
                usage = {"prompt": chunk.usage.prompt_tokens or 0, "completion": chunk.usage.completion_tokens or 0}
        return Turn("".join(parts), self._cache_status, usage, time.perf_counter() - started)


def describe_error(error: Exception) -> str:
    """One readable line for anything the SDK or the network raises (no traceback, no key)."""
    from mistralai.client import errors

    if isinstance(error, errors.MistralError):
        message = error.message
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            message = json.loads(error.body).get("message") or message
        hint = " (check the caller key)" if error.status_code in (401, 403) else ""
        return f"error {error.status_code}: {message}{hint}"
    name = type(error).__name__
    if "Connect" in name or "Timeout" in name or "Network" in name:
        return f"cannot reach the gateway ({name}); is it running? `make serve` starts one locally"
    return f"error: {name}: {error}"


def handle_command(line: str, conversation: Conversation, out: TextIO) -> bool:
    """Apply a /command; returns False when the user wants to leave."""
    command, _, argument = line.strip().partition(" ")
    argument = argument.strip()
    if command in ("/quit", "/exit"):
        return False
    if command == "/model" and argument:
        conversation.model = argument
        print(f"model: {argument}", file=out)
    elif command == "/temperature":
        try:
            value = float(argument)
        except ValueError:
            value = -1.0
        if 0.0 <= value <= 2.0:
            conversation.temperature = value
            print(f"temperature: {value}", file=out)
        else:
            print("temperature must be a number from 0 to 2, e.g. /temperature 0.2", file=out)
    elif command == "/reset":
        conversation.reset()
        print("conversation cleared", file=out)
    else:
        print(HELP, file=out)
    return True


def chat_loop(client: ChatClient, conversation: Conversation, stdin: TextIO, out: TextIO) -> int:
    print(f"chatting with {conversation.model} (temperature {conversation.temperature}). {HELP}", file=out)
    while True:
        print("you> ", end="", file=out, flush=True)
        line = stdin.readline()
        if not line:  # Ctrl-D
            print(file=out)
            return 0
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            if not handle_command(line, conversation, out):
                return 0
            continue
        conversation.messages.append({"role": "user", "content": line})
        print(f"{conversation.model}> ", end="", file=out, flush=True)
        try:
            turn = client.ask(conversation, lambda text: print(text, end="", file=out, flush=True))
        except KeyboardInterrupt:
            conversation.messages.pop()
            print("\n(interrupted)", file=out)
            continue
        except Exception as error:  # any failure is one line; the conversation goes on
            conversation.messages.pop()
            print(f"\n{describe_error(error)}", file=out)
            continue
        conversation.messages.append({"role": "assistant", "content": turn.text})
        tokens = f"{turn.usage.get('prompt', 0)} in / {turn.usage.get('completion', 0)} out tokens"
        print(f"\n[{turn.cache} · {tokens} · {turn.seconds:.2f} s]", file=out, flush=True)


def read_key(explicit: str | None, prompt: Callable[[str], str] = getpass.getpass) -> str:
    key = explicit or os.environ.get("GATEWAY_API_KEY") or ""
    if not key and sys.stdin.isatty():
        key = prompt("caller key (not echoed): ")
    return key.strip()


def main(argv: list[str] | None = None, *, stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["keys"]:  # caller keys, budgets, models and spend (keys_cli.py has its own options)
        from gateway_dev.ops import keys_cli

        return keys_cli.main(arguments[1:], out=out)
    parser = argparse.ArgumentParser(prog="mistral-gateway", description="Chat with the gateway; manage its keys.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("keys", help="caller keys: create, list, show, revoke, rotate, limits, models, usage")
    chat = commands.add_parser("chat", help="interactive multi-turn chat, streamed")
    chat.add_argument("--url", default=os.environ.get("GATEWAY_URL", DEFAULT_URL), help="gateway base URL")
    chat.add_argument("--key", default=None, help="caller key (default: $GATEWAY_API_KEY, else a hidden prompt)")
    chat.add_argument("--model", default="mistral-large-latest")
    chat.add_argument("--temperature", type=float, default=0.2)
    chat.add_argument("--system", default=None, help="an optional system prompt")
    args = parser.parse_args(argv)

    stdin = stdin or sys.stdin
    out = out or sys.stdout
    key = read_key(args.key)
    if not key:
        print("no caller key: pass --key, set GATEWAY_API_KEY, or run in a terminal to be asked", file=sys.stderr)
        return 2
    conversation = Conversation(model=args.model, temperature=args.temperature, system=args.system)
    conversation.reset()
    return chat_loop(ChatClient(args.url, key), conversation, stdin, out)


if __name__ == "__main__":
    sys.exit(main())
