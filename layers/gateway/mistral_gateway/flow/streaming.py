"""Streamed chat and FIM answers, forwarded event by event as Mistral writes them.

A streamed request reads top to bottom in `completion_stream`: the cache first (a hit replays the stored
events), then validation, the caller's budget, and Mistral's stream opened under the retry policy. Until
Mistral answers 200 every failure is an ordinary error answer (status + JSON, or a stale answer). After
that, a `ChatStream` (a LiveStream, live_stream.py) takes over: a reader thread forwards each event the moment
it is complete, byte for byte, while assembling the whole answer; the caller's side (`events()`) sends SSE
comments while Mistral is silent. Only a stream that completed (`[DONE]` seen, every choice finished) is
stored; a cut, an idle timeout, the total cap or a caller who hangs up end it with an in-band error event (or
nothing, for a caller who is gone), no `[DONE]`, nothing stored, and the budget settled to what was spent.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import replace
from typing import Any

from mistral_gateway.container import current, settings
from mistral_gateway.flow import answers, checks, fallback
from mistral_gateway.flow.live_stream import TEXT_LIMIT_BYTES, LiveStream
from mistral_gateway.platform import observability
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.platform.observability import logger
from mistral_gateway.policies import quota
from mistral_gateway.policies.cache import MAX_STORED_BYTES, Compressed
from mistral_gateway.requests import prompt_cache
from mistral_gateway.requests.canonical import canonical_chat
from mistral_gateway.requests.http import CacheControl
from mistral_gateway.upstream import mistral as upstream
from mistral_gateway.upstream import sse


def completion_stream(
    route: str,
    body: dict[str, Any],
    *,
    caller: str | None,
    control: CacheControl,
    deadline: Deadline,
    fallbacks: bool = True,
) -> answers.Answer | ChatStream:
    """A streamed chat (`route="chat"`) or FIM request: a cached answer replayed as events, or Mistral's
    stream opened and handed to a ChatStream. Raises a GatewayError for anything before the first byte."""
    started = time.perf_counter()
    if route == "chat":
        body = checks.in_mistral_dialect(body)
    key_form, validated = checks.admitted_completion(route, body)  # a hit only for what validation accepts
    checks.check_fine_tuned(body, caller)
    found = answers.look_up(route, canonical_chat(key_form), answers.cache_scope(caller), control)
    if found.hit is not None:
        return answers.as_stream(answers.priced(answers.budgeted_hit(found.hit, caller, body), body))

    arguments = prompt_cache.namespaced(checks.upstream_arguments(route, body, validated), caller)
    status = answers.count_miss(control)
    spending = current().budgets.spending(caller, body, cappable=True)  # 429 when the caller's budget is spent
    if spending.cap is not None:  # the key's token budget caps what Mistral may write (quota.py)
        arguments = {**arguments, "max_tokens": spending.cap}
    idle_ms = settings().stream_idle_timeout_ms
    try:
        # Fallbacks only while opening: once Mistral's 200 is in, the stream is this target's (fallback.py).
        opened, served = fallback.first_answer(
            arguments["model"],
            lambda target: upstream.open_stream(
                *current().upstream_and_sdk(target.upstream),
                route,
                {**arguments, "model": target.model},
                deadline,
                idle_ms,
            ),
            deadline,
            enabled=fallbacks,
        )
    except answers.STALE_ON as error:
        spending.release()
        if found.stale is not None and answers.within_stale_window(found.stale):
            return answers.as_stream(answers.priced(answers.stale_answer(found.stale, error), body))
        raise
    except BaseException:
        spending.release()
        raise
    headers = {"X-Cache": status, **spending.headers, **served.headers()}
    if served.fell_back:
        logger.append_keys(**served.log_fields())
        control = replace(control, store=False)  # only what the requested model answered is stored
    return ChatStream(
        opened,
        found.key,
        control,
        spending,
        deadline,
        started,
        headers,
        upstream=served.target.upstream,
        model=served.target.model,
    )


class ChatStream(LiveStream):
    """A streamed chat or FIM miss: each event forwarded as it comes while the whole answer is assembled; the
    answer is stored when the stream completed (`[DONE]` seen, every choice finished), and `[DONE]` is sent
    after the store, so a caller who asks again as soon as its stream ends gets the HIT."""

    def _pump(self) -> str:
        splitter = sse.EventSplitter()
        self._assembler = assembler = sse.Assembler()
        self._kept = kept = _KeptEvents()
        self._held: bytes | None = None  # Mistral's [DONE], sent once the answer is stored (_last_words)
        self._readable = True
        done = False

        def on_event(event: bytes) -> None:
            nonlocal done
            payload = sse.event_data(event)
            if payload == "[DONE]":
                done = True
            elif payload is not None:
                self._readable = self._collect(payload, assembler) and self._readable
            if payload == "[DONE]" and self._held is None:
                self._held = event
                self.outcome.events += 1
            else:
                self._forward(event, payload)
            too_large = not kept.add(event) or assembler.text_bytes > TEXT_LIMIT_BYTES
            if too_large and kept.drop():  # let go: this answer cannot be stored
                assembler.drop_text()
                self.outcome.too_large_to_store = True

        ended = self._follow(self._upstream.chunks(), splitter, on_event)
        if ended is None:
            ended = "complete" if done and not splitter.pending.strip() else "cut"
        if ended == "complete" and not (self._readable and assembler.finished):
            ended = "incomplete"  # [DONE] came, but a choice never finished: forwarded as is, never stored
        return ended

    def _settle(self, ended: str) -> None:
        answer = self._assembler.answer() if ended == "complete" and self._readable else None
        sent = self._kept.sent() if answer is not None else None
        self._finish(ended, answer, sent, _usage(self._assembler.usage))

    def _last_words(self) -> None:
        if self._held is not None:
            self._put(self._held)

    def _collect(self, payload: str, assembler: sse.Assembler) -> bool:
        try:
            chunk = json.loads(payload)
            if not isinstance(chunk, dict):
                return False
            assembler.feed(chunk)
        except (ValueError, TypeError, AttributeError, RecursionError):
            return False
        return True

    def _finish(self, ended: str, answer: dict[str, Any] | None, sent: bytes | None, usage: dict[str, int]) -> None:
        self._close_books(ended, usage, early=ended != "complete", circuit=self._model)
        if ended == "complete" and answer is not None and quota.cut_at_cap(answer, self._spending.cap):
            answers.account(b"", usage)  # forwarded whole, but maybe cut by the budget's cap: never stored
        elif ended == "complete" and answer is not None:
            body = json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode()
            self.outcome.stored = answers.store(self._key, body, usage, self._control, events=sent)
            answers.account(body, usage)
        elif ended == "complete":  # whole, but too large to store: it was not collected
            logger.warning("answer too large to cache", extra={"stream_events": self.outcome.events})
            observability.count(observability.CACHE_STORE_SKIPPED)
            answers.account(b"", usage)
        elif usage:
            answers.account(b"", usage)
        self._report()


class _KeptEvents:
    """Mistral's events, compressed as they pass, for as long as the answer can still be stored."""

    def __init__(self) -> None:
        self._compressor: Any = zlib.compressobj(6)  # None once given up
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, event: bytes) -> bool:
        """Keep one event; False once what is kept is more than the cache can store."""
        if self._compressor is None:
            return True
        if output := self._compressor.compress(event):  # zlib gives output a block at a time
            self._parts.append(output)
            self._size += len(output)
        return self._size <= MAX_STORED_BYTES

    def drop(self) -> bool:
        """Let go of what is kept; True the first time."""
        dropped = self._compressor is not None
        self._compressor, self._parts = None, []
        return dropped

    def sent(self) -> Compressed | None:
        return Compressed(b"".join(self._parts) + self._compressor.flush()) if self._compressor is not None else None


def _usage(usage: Any) -> dict[str, int]:
    """Mistral's usage (in the last chunk), when it came: economics.token_usage's counts (cached tokens too)."""
    from mistral_gateway.platform.economics import token_usage

    return token_usage(usage)
