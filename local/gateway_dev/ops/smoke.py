"""`make smoke URL=... KEY=...`: after `sam deploy` (or against `make serve`), check the live gateway end to end
and print one PASS/FAIL/SKIP line per check; the exit code is 1 when any check failed.

    make smoke URL=https://abc.execute-api.eu-west-1.amazonaws.com/prod KEY=mgw_... ARGS="--stack mistral-gateway"
    make smoke URL=http://127.0.0.1:3000 KEY=<a make serve key> ARGS=--local

Checks: no key and a wrong key are 401 in Mistral's error shape; a plain chat, then its repeat is X-Cache: HIT;
a stream's first event arrives well before its last (TTFT and total printed); a CORS preflight passes
without a key; /health. With --stack NAME (or --local) it also creates a throwaway key (one model, two requests
a minute), checks that another model is a 403 and the third request a 429, and revokes the key, whatever happens.
A smoke run costs a few Mistral calls of a handful of tokens (a fraction of a cent).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

CHAT = "/v1/chat/completions"
MODEL = "mistral-small-latest"
OTHER_MODEL = "mistral-large-latest"
KEY_PROPAGATION_SECONDS = 60.0  # API Gateway may take a few seconds to accept a new key


@dataclass
class Result:
    name: str
    outcome: str  # PASS | FAIL | SKIP
    detail: str


class Smoke:
    def __init__(self, url: str, key: str, *, model: str = MODEL, timeout: float = 60.0) -> None:
        import httpx2

        self.url = url.rstrip("/")
        self.key = key
        self.model = model
        self.http = httpx2.Client(timeout=timeout)
        self.nonce = secrets.token_hex(6)  # a prompt no earlier run has cached

    def close(self) -> None:
        self.http.close()

    def post(self, path: str, body: dict[str, Any], key: str | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return self.http.post(self.url + path, content=json.dumps(body), headers=headers)

    def chat_body(self, text: str, model: str | None = None, **extra: Any) -> dict[str, Any]:
        return {
            "model": model or self.model,
            "messages": [{"role": "user", "content": text}],
            "max_tokens": 16,
            **extra,
        }

    # --- the checks -------------------------------------------------------------------------------------------

    def no_key(self) -> tuple[bool, str]:
        return _refused_401(self.post(CHAT, self.chat_body("smoke: no key")))

    def wrong_key(self) -> tuple[bool, str]:
        return _refused_401(self.post(CHAT, self.chat_body("smoke: wrong key"), key="mgw_wrong_" + self.nonce))

    def chat_then_hit(self) -> tuple[bool, str]:
        body = self.chat_body(f"smoke {self.nonce}: say hello")
        first = self.post(CHAT, body, self.key)
        if first.status_code != 200:
            return False, f"chat answered {first.status_code}: {_message(first)}"
        second = self.post(CHAT, body, self.key)
        statuses = f"{first.headers.get('x-cache')} then {second.headers.get('x-cache')}"
        return second.status_code == 200 and second.headers.get("x-cache") == "HIT", f"X-Cache {statuses}"

    def stream(self) -> tuple[bool, str]:
        body = self.chat_body(f"smoke {self.nonce}: count to twenty", stream=True, max_tokens=64)
        started = time.perf_counter()
        first = last = None
        events = 0
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        with self.http.stream("POST", self.url + CHAT, content=json.dumps(body), headers=headers) as response:
            if response.status_code != 200:
                response.read()
                return False, f"stream answered {response.status_code}: {_message(response)}"
            for line in response.iter_lines():
                if line.startswith("data:"):
                    events += 1
                    last = time.perf_counter() - started
                    first = last if first is None else first
        if first is None or last is None:
            return False, "no event arrived"
        detail = f"TTFT {first * 1000:.0f} ms, total {last * 1000:.0f} ms, {events} events"
        return events >= 3 and first <= last / 2, detail

    def preflight(self) -> tuple[bool, str]:
        response = self.http.request(
            "OPTIONS",
            self.url + CHAT,
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        allowed = response.headers.get("access-control-allow-origin")
        return response.status_code in (200, 204) and bool(allowed), f"{response.status_code}, allow-origin {allowed}"

    def health(self) -> tuple[bool, str]:
        response = self.http.get(self.url + "/health")
        return response.status_code == 200, f"{response.status_code} {response.text[:120]}"

    def throwaway(self, gateway: Any) -> list[Result]:
        """Model access (403) and a budget (429) with a key made for the purpose, revoked at the end."""
        from gateway_dev.ops import keys

        key, value = keys.create(gateway, f"smoke-{self.nonce}", limits={"requests_per_minute": 2}, models=[self.model])
        results = []
        try:
            first = self._until_accepted(value)
            results.append(Result("throwaway key accepted", *_status(first, 200)))
            other = self.post(CHAT, self.chat_body(f"smoke {self.nonce} other", OTHER_MODEL), value)
            denied = other.status_code == 403 and _shape(other).get("type") == "permission_error"
            results.append(Result("model access 403", "PASS" if denied else "FAIL", f"{other.status_code}"))
            self.post(CHAT, self.chat_body(f"smoke {self.nonce} second"), value)
            third = self.post(CHAT, self.chat_body(f"smoke {self.nonce} third"), value)
            over = third.status_code == 429 and bool(third.headers.get("retry-after"))
            results.append(Result("budget 429", "PASS" if over else "FAIL", f"{third.status_code}: {_message(third)}"))
        finally:
            keys.revoke(gateway, key)
        return results

    def _until_accepted(self, key: str) -> Any:
        deadline = time.monotonic() + KEY_PROPAGATION_SECONDS
        while True:
            response = self.post(CHAT, self.chat_body(f"smoke {self.nonce} first"), key)
            if response.status_code not in (401, 403) or time.monotonic() > deadline:
                return response
            time.sleep(2)


def run(smoke: Smoke, gateway: Any, out: TextIO) -> int:
    checks: list[tuple[str, Callable[[], tuple[bool, str]]]] = [
        ("no key is 401", smoke.no_key),
        ("wrong key is 401", smoke.wrong_key),
        ("chat, then its repeat is a HIT", smoke.chat_then_hit),
        ("stream arrives early", smoke.stream),
        ("CORS preflight without a key", smoke.preflight),
        ("/health", smoke.health),
    ]
    results = []
    for name, check in checks:
        try:
            passed, detail = check()
            results.append(Result(name, "PASS" if passed else "FAIL", detail))
        except Exception as error:  # a check that cannot run is a failure, in one line
            results.append(Result(name, "FAIL", f"{type(error).__name__}: {str(error)[:200]}"))
        _print(results[-1], out)
    if gateway is None:
        for name in ("model access 403", "budget 429"):
            results.append(Result(name, "SKIP", "needs --stack NAME or --local (to make a throwaway key)"))
            _print(results[-1], out)
    else:
        try:
            for result in smoke.throwaway(gateway):
                results.append(result)
                _print(result, out)
        except Exception as error:
            from gateway_dev.ops.keys import KeysError, describe

            message = str(error) if isinstance(error, KeysError) else describe(error, gateway)[0]
            results.append(Result("throwaway key", "FAIL", message))
            _print(results[-1], out)
    failed = [result for result in results if result.outcome == "FAIL"]
    print(f"{len(results) - len(failed)} of {len(results)} checks did not fail", file=out)
    return 1 if failed else 0


def _print(result: Result, out: TextIO) -> None:
    print(f"{result.outcome:4}  {result.name}: {result.detail}", file=out, flush=True)


def _shape(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _message(response: Any) -> str:
    return str(_shape(response).get("message") or response.text[:120])


def _status(response: Any, expected: int) -> tuple[str, str]:
    return ("PASS" if response.status_code == expected else "FAIL"), f"{response.status_code}"


def _refused_401(response: Any) -> tuple[bool, str]:
    body = _shape(response)
    mistral_shape = body.get("object") == "error" and body.get("type") == "authentication_error"
    mistral_shape = mistral_shape and {"message", "type", "param", "code"} <= set(body)
    return response.status_code == 401 and mistral_shape, f"{response.status_code} {body.get('type')}"


def main(argv: list[str] | None = None, *, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make smoke", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("URL") or os.environ.get("GATEWAY_URL"))
    parser.add_argument("--key", default=os.environ.get("KEY") or os.environ.get("GATEWAY_API_KEY"))
    parser.add_argument("--model", default=MODEL)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stack", default=None, help="make a throwaway key in this stack (429 and 403 checks)")
    where.add_argument("--local", action="store_true", help="make the throwaway key in make serve's moto")
    args = parser.parse_args(argv)
    out = out or sys.stdout
    if not args.url or not args.key:
        print("error: give URL=... and KEY=... (the gateway's URL and a caller key)", file=sys.stderr)
        return 2
    gateway = None
    if args.stack or args.local:
        from gateway_dev.ops import keys

        try:
            gateway = keys.connect_local() if args.local else keys.connect_stack(args.stack)
        except Exception as error:
            message = str(error) if isinstance(error, keys.KeysError) else keys.describe(error, None)[0]
            print(f"error: {message}", file=sys.stderr)
            return 2
    smoke = Smoke(args.url, args.key, model=args.model)
    try:
        return run(smoke, gateway, out)
    finally:
        smoke.close()


if __name__ == "__main__":
    sys.exit(main())
