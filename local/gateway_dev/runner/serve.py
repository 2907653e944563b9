"""`make serve`: the whole gateway on one machine, no Docker, no AWS account, no Mistral key needed.

- routes and function environments come from template.yaml (see bridge.py / template.py);
- DynamoDB and Secrets Manager are a moto server in a process of its own (moto_process.py), with the
  template's table and secret, reached through AWS_ENDPOINT_URL like any AWS endpoint;
- the upstream is Mistral when MISTRAL_API_KEY is set (or MISTRAL_SERVER_URL, e.g. a local vLLM/Ollama),
  otherwise the bundled Mistral emulator, labelled as such in the banner and in a response header;
- callers authenticate with GATEWAY_API_KEY (generated and printed when not set);
- uvicorn serves it all on one port: routes the template marks for streaming go to the streaming function's
  ASGI app (as the Lambda Web Adapter does in the cloud), the others to the buffered handler (asgi.py);
- variables set in the shell (REQUEST_DEADLINE_MS=2000 make serve) win over the template's defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import secrets
import signal
import socket
import sys
from dataclasses import dataclass
from typing import Any

from gateway_dev.cloud.template import Template
from gateway_dev.runner.moto_process import MotoProcess

LOCAL_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass
class LocalStack:
    """Everything `make serve` runs, started and stopped together."""

    template: Template
    moto_url: str
    upstream: str  # "emulator" | "mistral" | "custom"
    upstream_url: str
    api_key: str
    stoppers: list[Any]

    def stop(self) -> None:
        from gateway_dev.runner import spend_delivery

        try:  # the last served lines reach the spend function while moto is still up
            spend_delivery.flush(timeout=5.0)
        except TimeoutError:
            print("spend delivery: lines left undelivered at exit", file=sys.stderr)
        for stop in reversed(self.stoppers):
            with contextlib.suppress(Exception):
                stop()


def start_local(
    *,
    mistral_api_key: str | None,
    server_url: str | None,
    api_key: str | None,
    moto_url: str | None = None,
    moto: MotoProcess | None = None,
    emulator_host: str = "127.0.0.1",
) -> LocalStack:
    """Start moto (unless given: its URL, or its process still starting), the resources, and the upstream; set
    the functions' environment."""
    stoppers: list[Any] = []
    for name, value in LOCAL_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if moto_url is None:
        moto = moto or MotoProcess()
        stoppers.append(moto.stop)

    template = Template()
    if mistral_api_key:
        upstream = "custom" if server_url else "mistral"
        upstream_url = server_url or template.parameters["MistralServerUrl"]
        stored_key = mistral_api_key
    elif server_url:
        upstream, upstream_url, stored_key = "custom", server_url, "no-key"
    else:
        stored_key = "emulator-key-" + secrets.token_hex(8)
        emulator = _emulator(api_key=stored_key, host=emulator_host).start()
        stoppers.append(emulator.stop)
        upstream, upstream_url = "emulator", emulator.url
    if "self-hosted:" in os.environ.get("FALLBACK_CHAINS", "") and not os.environ.get("SELF_HOSTED_SERVER_URL"):
        # A fallback chain names the second upstream but none is given: a second emulator plays it (no key).
        second = _emulator(api_key=None, host=emulator_host, failing=False)
        second.accept_any_model = True  # a self-hosted server serves whatever model names it was given
        second.start()
        stoppers.append(second.stop)
        os.environ["SELF_HOSTED_SERVER_URL"] = second.url

    from gateway_dev.cloud.resources import create_resources

    if moto_url is None:
        assert moto is not None
        moto_url = moto.url()  # the template and the emulator were made while moto started
    os.environ["AWS_ENDPOINT_URL"] = moto_url
    create_resources(template, mistral_api_key=stored_key)
    apply_function_environments(template, os.environ)
    os.environ["MISTRAL_SERVER_URL"] = upstream_url
    return LocalStack(template, moto_url, upstream, upstream_url, api_key or "", stoppers)


def _emulator(*, api_key: str | None, host: str, failing: bool = True) -> Any:
    """The bundled emulator as the environment sets it up: its pace, answer length and failing models."""
    from gateway_dev.emulator.server import MistralEmulator

    pace = float(os.environ.get("EMULATOR_TOKENS_PER_SECOND") or 0)
    failing_models = {}
    for item in (os.environ.get("EMULATOR_FAILING_MODELS") or "").split(",") if failing else []:
        model, _, status = item.strip().partition("=")
        if model and status.isdigit():
            failing_models[model] = int(status)
    return MistralEmulator(
        api_key=api_key,
        host=host,
        stream_delay=1 / pace if pace > 0 else 0.0,
        answer_words=int(os.environ.get("EMULATOR_ANSWER_TOKENS") or 0),
        failing_models=failing_models,
    )


def apply_function_environments(template: Template, environ: Any) -> None:
    """The functions' variables as the template sets them, except those the developer set in the shell:
    `REQUEST_DEADLINE_MS=2000 make serve` works like a parameter override would."""
    for logical_id in template.resources_of_type("AWS::Serverless::Function"):
        for name, value in template.function_environment(logical_id).items():
            environ.setdefault(name, value)


def banner(stack: LocalStack, url: str, callers: dict[str, str] | None = None) -> str:
    upstream = {
        "emulator": f"Mistral EMULATOR at {stack.upstream_url} (deterministic fake answers, not a model;"
        " set MISTRAL_API_KEY to use Mistral)",
        "mistral": f"Mistral API at {stack.upstream_url} (real calls, billed to your key)",
        "custom": f"custom upstream at {stack.upstream_url}",
    }[stack.upstream]
    env = os.environ
    return f"""
  Mistral gateway (local) is up: {url}
  caller key  : {stack.api_key}   (Authorization: Bearer <key>){_other_keys(stack, callers or {})}
  upstream    : {upstream}
  fallbacks   : {env.get("FALLBACK_CHAINS") or "none (FALLBACK_CHAINS)"}{_self_hosted(env)}
  AWS (moto)  : {stack.moto_url}   table {env.get("CACHE_TABLE_NAME")}, secret {env.get("MISTRAL_SECRET_ID")}
  keys        : in moto's API Gateway usage plan; make keys ARGS="--local create my-app" (list, revoke, usage...)

  curl {url}/v1/chat/completions -H 'Authorization: Bearer {stack.api_key}' \\
       -H 'Content-Type: application/json' \\
       -d '{{"model": "mistral-small-latest", "messages": [{{"role": "user", "content": "Hello"}}]}}'

  curl -N {url}/v1/chat/completions -H 'Authorization: Bearer {stack.api_key}' \\
       -H 'Content-Type: application/json' \\
       -d '{{"model": "mistral-small-latest", "stream": true, "messages": [{{"role": "user", "content": "Hi"}}]}}'

  .venv/bin/python -c "from mistralai.client import Mistral; \\
c = Mistral(api_key='{stack.api_key}', server_url='{url}'); \\
print(c.chat.complete(model='mistral-small-latest', messages=[{{'role': 'user', 'content': 'Hello'}}]) \\
.choices[0].message.content)"

  .venv/bin/python -c "from openai import OpenAI; c = OpenAI(api_key='{stack.api_key}', base_url='{url}/v1'); \\
print(c.chat.completions.create(model='mistral-small-latest', messages=[{{'role': 'user', 'content': 'Hello'}}]) \\
.choices[0].message.content)"

  Logs below are the function's own JSON lines (what CloudWatch gets). Ctrl-C stops everything.
"""


def caller_keys_from_env(env: Any) -> dict[str, str]:
    """{caller key: key id}: GATEWAY_API_KEY, then each of GATEWAY_API_KEYS (comma-separated), each a caller
    of its own (its own cache scope, budgets and resources); a key named in both is one caller. With neither
    set, one key is generated. Ids are what API Gateway's requestContext would carry (apiKeyId)."""
    keys = [env.get("GATEWAY_API_KEY", "").strip()]
    keys += [key.strip() for key in env.get("GATEWAY_API_KEYS", "").split(",")]
    unique = list(dict.fromkeys(key for key in keys if key))
    if not unique:
        unique = ["local-" + secrets.token_urlsafe(18)]
    return {key: "local-caller" if n == 0 else f"local-caller-{n + 1}" for n, key in enumerate(unique)}


def keys_in_usage_plan(stack: LocalStack, callers: dict[str, str], *, stage: str, url: str) -> Any:
    """The caller keys as API keys in moto's usage plan (usage_plan.py), and the check of callers against it.
    Where they live is written to the state file `keys --local` reads, and forgotten when the runner stops."""
    from gateway_dev.cloud import usage_plan

    api, _ids = usage_plan.provision(stack.template, list(callers), stage=stage, names=list(callers.values()))
    path = dataclasses.replace(api, url=url).save()
    stack.stoppers.append(lambda: usage_plan.forget(path, api))
    return usage_plan.UsagePlanCallers(api.usage_plan_id)


def _other_keys(stack: LocalStack, callers: dict[str, str]) -> str:
    others = [key for key in callers if key != stack.api_key]
    return "".join(f"\n  caller key  : {key}   (another caller: its own cache, budgets, resources)" for key in others)


def _self_hosted(env: Any) -> str:
    url = env.get("SELF_HOSTED_SERVER_URL")
    return f"; self-hosted upstream at {url}" if url else ""


def _listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound before anything starts (port 0 picks a free one)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT from a previous run is fine
    # Inherited by every accepted connection: without it an answer's second write waits ~40 ms for the
    # client's delayed ACK on kept-alive connections (uvicorn sets it only on sockets it binds itself).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)  # callers who come before uvicorn has started wait in the backlog
    return sock


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop cleanly, even when started from a shell that made SIGINT ignored (`cmd &`).
    uvicorn handles both while it runs, then restores these and raises the signal again once it has stopped."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the gateway locally without Docker.")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--stage", default="prod")
    args = parser.parse_args(argv)
    try:
        sock = _listen(args.host, args.port)
    except OSError as error:
        print(
            f"error: cannot listen on {args.host}:{args.port} ({error.strerror}). "
            f"Is another server running? Try PORT=3001 make serve.",
            file=sys.stderr,
        )
        return 1
    moto = MotoProcess()  # it imports moto while this process imports the rest (it ends when this one does)

    from gateway_dev.runner.asgi import KEEP_ALIVE_S, LocalGateway
    from gateway_dev.runner.bridge import ApiBridge

    callers = caller_keys_from_env(os.environ)
    api_key = next(iter(callers))
    # A newcomer should see a stream arrive word by word: the emulator writes 20 words a second by default.
    os.environ.setdefault("EMULATOR_TOKENS_PER_SECOND", "20")
    os.environ.setdefault("EMULATOR_ANSWER_TOKENS", "40")
    stack = start_local(
        mistral_api_key=os.environ.get("MISTRAL_API_KEY"),
        server_url=os.environ.get("MISTRAL_SERVER_URL"),
        api_key=api_key,
        moto=moto,
    )
    labels = {"X-Mistral-Emulator": "true"} if stack.upstream == "emulator" else {}
    url = f"http://{args.host}:{sock.getsockname()[1]}"
    plan = keys_in_usage_plan(stack, callers, stage=args.stage, url=url)
    # Each function its own container, as in the cloud: one's circuits, clients and caches are not the other's.
    bridge = ApiBridge(stack.template, stage=args.stage, api_keys=plan, extra_headers=labels, own_containers=True)
    print(banner(stack, url, callers), flush=True)

    import uvicorn

    config = uvicorn.Config(
        LocalGateway(bridge),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    _stop_on_signals()
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        stack.stop()
        print("\nstopped: API, moto and upstream emulator are down", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
