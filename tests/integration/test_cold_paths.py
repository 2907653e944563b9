"""What a cold container loads to answer a cache hit: never the SDK, pydantic or the pass-through (a fresh
process, as Lambda starts one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

COLD_HIT = """
import json, os, sys
from gateway_dev.template import Template
template = Template()
os.environ.update(template.function_environment("ApiFunction"))
from moto import mock_aws
from gateway_dev.apigw import proxy_event
from gateway_dev.bridge import load_function
from gateway_dev.resources import create_resources
with mock_aws():
    create_resources(template, mistral_api_key="k")
    function = load_function(template, "ApiFunction")
    from mistral_gateway.canonical import cache_key, canonical_chat
    from mistral_gateway.container import current
    from mistral_gateway.service import cache_scope
    request = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "stored before"}]}
    answer = {"id": "a", "object": "chat.completion", "model": "mistral-small-latest", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "yes"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}}
    key = cache_key("chat", cache_scope(None), canonical_chat(request))
    current().answers.put(key, json.dumps(answer).encode(), ttl_seconds=60, prompt_tokens=2, completion_tokens=1)
    event = proxy_event("POST", "/v1/chat/completions", resource="/v1/chat/completions", body=json.dumps(request))
    result = function.invoke(event)
watched = ["mistralai.client", "pydantic", "httpx2", "mistral_gateway.passthrough", "mistral_gateway.upstream"]
headers = {**result.get("headers", {}), **{k: v[-1] for k, v in result.get("multiValueHeaders", {}).items()}}
print(json.dumps([result["statusCode"], headers.get("X-Cache"), [m for m in watched if m in sys.modules]]))
"""


def test_a_cold_cache_hit_loads_neither_the_sdk_nor_pydantic_nor_the_pass_through() -> None:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}
    run = subprocess.run([sys.executable, "-c", COLD_HIT], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    status, cache, loaded = json.loads(run.stdout.strip().splitlines()[-1])
    assert (status, cache, loaded) == (200, "HIT", []), run.stderr[-2000:]
