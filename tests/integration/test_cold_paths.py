"""What a cold container loads to answer: a fresh process, as Lambda starts one, with moto and the emulator.

A cache hit never loads the SDK, pydantic, httpx2 or the pass-through; a pass-through never loads the SDK
or pydantic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

# The child's first lines: the function's environment, moto with the template's resources, the emulator.
PREAMBLE = """
import json, os, sys
from gateway_dev.cloud.template import Template
template = Template()
os.environ.update(template.function_environment("ApiFunction"))
from moto import mock_aws
from gateway_dev.cloud.apigw import proxy_event
from gateway_dev.runner.functions import load_function
from gateway_dev.emulator.server import MistralEmulator
from gateway_dev.cloud.resources import create_resources
with mock_aws(), MistralEmulator(api_key="k") as emulator:
    create_resources(template, mistral_api_key="k")
    os.environ["MISTRAL_SERVER_URL"] = emulator.url
    function = load_function(template, "ApiFunction")
"""
# Then the child prints [status, X-Cache, the watched modules it loaded].
REPORT = """
watched = [
    "mistralai.client", "pydantic", "httpx2", "mistral_gateway.flow.passthrough", "mistral_gateway.upstream.mistral",
    "mistral_gateway.flow.relay",
]
headers = {**result.get("headers", {}), **{k: v[-1] for k, v in result.get("multiValueHeaders", {}).items()}}
print(json.dumps([result["statusCode"], headers.get("X-Cache"), [m for m in watched if m in sys.modules]]))
"""

STORED_THEN_ASKED = """
    from mistral_gateway.requests.canonical import cache_key, canonical_chat
    from mistral_gateway.container import current
    from mistral_gateway.flow.answers import cache_scope
    request = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "stored before"}]}
    answer = {"id": "a", "object": "chat.completion", "model": "mistral-small-latest", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "yes"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}}
    key = cache_key("chat", cache_scope(None), canonical_chat(request))
    current().answers.put(key, json.dumps(answer).encode(), ttl_seconds=60, prompt_tokens=2, completion_tokens=1)
    event = proxy_event("POST", "/v1/chat/completions", resource="/v1/chat/completions", body=json.dumps(request))
    result = function.invoke(event)
"""

MODERATION = """
    body = json.dumps({"model": "mistral-moderation-latest", "input": "hi"})
    result = function.invoke(proxy_event("POST", "/v1/moderations", resource="/v1/{proxy+}", body=body))
"""


def cold(steps: str) -> list[Any]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}
    script = PREAMBLE + steps + REPORT
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    report: list[Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return report


def test_a_cold_cache_hit_loads_neither_the_sdk_nor_pydantic_nor_the_pass_through_nor_the_relay() -> None:
    assert cold(STORED_THEN_ASKED) == [200, "HIT", []]


def test_the_pass_through_path_loads_neither_the_sdk_nor_pydantic() -> None:
    status, _, loaded = cold(MODERATION)
    assert status == 200 and "mistralai.client" not in loaded and "pydantic" not in loaded
    # The watched names are real modules: the pass-through loads these two (so a hit's [] means something)
    assert {"mistral_gateway.flow.passthrough", "mistral_gateway.flow.relay"} <= set(loaded)


COLD_MISS = """
    request = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "a cold miss"}]}
    event = proxy_event("POST", "/v1/chat/completions", resource="/v1/chat/completions", body=json.dumps(request))
    result = function.invoke(event)
    function.settle()
    from mistral_gateway.container import current
    hooks = current().sdk("mistral").sdk_configuration.__dict__["_hooks"]
    registered = [hooks.before_request_hooks, hooks.after_success_hooks, hooks.after_error_hooks, hooks.sdk_init_hooks]
    print(json.dumps({
        "status": result["statusCode"],
        "hooks": sorted({type(hook).__name__ for kind in registered for hook in kind}),
        "loaded": [name for name in ("opentelemetry", "mistralai.extra.workflows") if name in sys.modules],
        "user_agent": emulator.requests[-1].headers.get("user-agent"),
    }))
"""


def test_a_cold_miss_builds_the_sdk_with_only_the_hooks_the_gateway_keeps() -> None:
    # Given a fresh process, as Lambda starts one, where nothing imported the SDK before the gateway
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}
    # When a chat miss goes to Mistral through the SDK
    run = subprocess.run(
        [sys.executable, "-c", PREAMBLE + COLD_MISS], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    # Then the answer came, the SDK's client has the gateway's hooks only, and neither OpenTelemetry nor the
    # SDK's workflows were imported; Mistral still sees the SDK's own user agent
    from mistral_gateway.upstream import sdk

    assert report["status"] == 200
    assert report["hooks"] == sorted(sdk.KEPT)
    assert report["loaded"] == []
    assert report["user_agent"].startswith("mistral-client-python/")
