"""A newcomer's first five minutes: the banner's examples run as printed, every answer carries each header once,
OpenAI's legacy completions route gets a 404 that says what it is, `make invoke` shows no access-log lines, and
`make serve`'s install (requirements-serve.txt) holds everything the serving code imports."""

from __future__ import annotations

import ast
import http.client
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from distributions import closure, requirement_lines
from test_serve import CALLER_KEY, ROOT, make_serve

from gateway_dev.cloud.template import Template

CHAT = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "Hello from the first run"}]}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, str]]:
    """One `make serve` (emulator upstream) for the module: (url, the output up to the banner's last line)."""
    with make_serve() as (url, _process, lines):
        yield url, "".join(lines)


def banner_examples(output: str) -> list[str]:
    """The banner's example commands: each paragraph between the settings (`name : value` lines) and the
    closing "Logs below" line, with the banner's indentation taken off."""
    banner = output[output.index("Mistral gateway (local) is up") :]
    paragraphs = [block for block in re.split(r"\n\s*\n", banner) if block.strip()]
    examples = []
    for block in paragraphs[1:]:
        if block.strip().startswith("Logs below"):
            break
        examples.append("\n".join(line.removeprefix("  ") for line in block.splitlines()))
    return examples


def test_every_example_the_banner_prints_runs_verbatim_from_the_repository_folder(served) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed on this machine")
    # Given the banner `make serve` printed
    url, output = served
    examples = banner_examples(output)
    assert [example.split()[0] for example in examples] == ["curl", "curl", ".venv/bin/python", ".venv/bin/python"]
    assert all(url in example and CALLER_KEY in example for example in examples)
    for example in examples:
        # When each is pasted into a shell in the repository's folder, as printed
        done = subprocess.run(["bash", "-c", example], cwd=ROOT, capture_output=True, text=True, timeout=60)
        # Then it succeeds and prints an answer
        assert done.returncode == 0, f"{example}\n{done.stdout}\n{done.stderr}"
        if " -N " in example:  # the streamed one: server-sent events to the end
            assert done.stdout.count("data: {") > 1 and done.stdout.rstrip().endswith("data: [DONE]"), done.stdout
        elif example.startswith("curl"):
            assert json.loads(done.stdout)["choices"][0]["message"]["content"], done.stdout
        else:  # the SDKs print the answer's text
            assert done.stdout.startswith("Emulated answer"), done.stdout
        assert "Traceback" not in done.stderr


def raw_headers(url: str, method: str, path: str, body: Any = None, key: str | None = CALLER_KEY) -> list[str]:
    """The answer's status and header names exactly as sent, repeats included (http.client keeps them)."""
    split = urlsplit(url)
    connection = http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = connection.getresponse()
        response.read()
        return [str(response.status)] + [name.lower() for name, _ in response.getheaders()]
    finally:
        connection.close()


def test_every_answer_carries_each_header_at_most_once(served) -> None:
    url, _ = served
    # Given the routes a newcomer tries first, with real bodies: each answered by the emulator
    tried = {
        "GET /v1/models": raw_headers(url, "GET", "/v1/models"),
        "POST /v1/embeddings": raw_headers(url, "POST", "/v1/embeddings", {"model": "mistral-embed", "input": ["a"]}),
        "POST /v1/moderations": raw_headers(
            url, "POST", "/v1/moderations", {"model": "mistral-moderation-latest", "input": ["a"]}
        ),
        "POST /v1/chat/completions": raw_headers(url, "POST", "/v1/chat/completions", CHAT),
        "POST /v1/chat/completions again (a HIT)": raw_headers(url, "POST", "/v1/chat/completions", CHAT),
        "POST /v1/chat/completions streamed": raw_headers(
            url, "POST", "/v1/chat/completions", {**CHAT, "stream": True}
        ),
        "POST /v1/completions": raw_headers(url, "POST", "/v1/completions", {"model": "x", "prompt": "a"}),
        "GET /v1/models without a key": raw_headers(url, "GET", "/v1/models", key=None),
        "GET /v1/no-such-route": raw_headers(url, "GET", "/v1/no-such-route"),
    }
    # And every route of the template, with an empty JSON object (most answers are 4xx: still labelled once)
    for route in Template().routes():
        method = "POST" if route.method == "ANY" else route.method
        path = re.sub(r"\{[^}]+\+\}", "some/thing", re.sub(r"\{[^}+]+\}", "some-id", route.path))
        tried.setdefault(f"{method} {path}", raw_headers(url, method, path, {} if method != "GET" else None))
    # Then no answer repeats a header, and the emulator's label and the cache's verdict are among them
    repeated = {
        name: [header for header, count in Counter(headers[1:]).items() if count > 1] for name, headers in tried.items()
    }
    assert {name: headers for name, headers in repeated.items() if headers} == {}
    assert all("x-mistral-emulator" in headers for headers in tried.values())
    assert tried["POST /v1/chat/completions"][0] == "200" and "x-cache" in tried["POST /v1/chat/completions"]
    assert all(tried[name][0] == "200" for name in list(tried)[:6])


KEY, OTHER_KEY = "first-run-key-a", "first-run-key-b"


@pytest.fixture
def serve_in_mode(gateway: Any, template: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Serve the API over HTTP as `make serve` does (own containers, the emulator's label), under an
    AccountRoutes mode; returns its URL."""
    from gateway_dev.runner.asgi import BackgroundServer, LocalGateway
    from gateway_dev.runner.bridge import ApiBridge

    servers: list[Any] = []

    def serve(mode: str) -> str:
        monkeypatch.setenv("ACCOUNT_ROUTES", mode)  # each function's container reads it when it starts
        bridge = ApiBridge(
            template,
            api_keys={KEY: "caller-a", OTHER_KEY: "caller-b"},
            extra_headers={"X-Mistral-Emulator": "true"},
            own_containers=True,
        )
        servers.append(BackgroundServer(LocalGateway(bridge)))
        return str(servers[-1].url)

    yield serve
    for server in servers:
        server.stop()


@pytest.mark.parametrize("mode", ["owned", "shared", "off"])
def test_openais_legacy_completions_route_gets_a_404_that_says_what_it_is(serve_in_mode, emulator, mode) -> None:
    from openai import NotFoundError, OpenAI

    # Given the gateway under each AccountRoutes mode
    url = serve_in_mode(mode)
    # When a caller posts OpenAI's legacy text completions, raw and through the OpenAI SDK, with either key
    raw = httpx2.post(
        f"{url}/v1/completions",
        json={"model": "mistral-small-latest", "prompt": "def add(a, b):"},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
    )
    with pytest.raises(NotFoundError) as refused:
        OpenAI(api_key=OTHER_KEY, base_url=f"{url}/v1", max_retries=0).completions.create(
            model="mistral-small-latest", prompt="def add(a, b):"
        )
    # Then both get a Mistral-style 404 that names the route and where to go instead, and Mistral is not called
    assert raw.status_code == 404 and raw.headers["content-type"].startswith("application/json")
    error = raw.json()
    assert error["object"] == "error" and error["type"] == "invalid_request_error"
    assert error["code"] == "not_a_mistral_route"
    assert "OpenAI's legacy text completions" in error["message"] and "Mistral does not offer" in error["message"]
    assert "/v1/chat/completions" in error["message"] and "/v1/fim/completions" in error["message"]
    assert "AccountRoutes" not in error["message"]
    assert refused.value.status_code == 404 and "legacy text completions" in str(refused.value)
    assert emulator.calls("/v1/completions") == 0


def test_make_invoke_shows_the_handlers_output_and_no_access_log_lines() -> None:
    # Given `make invoke` with the chat event (in-process moto and emulator)
    done = subprocess.run(
        ["make", "--no-print-directory", "invoke", "EVENT=events/chat.json", f"PYTHON={sys.executable}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT", "MISTRAL_"))},
    )
    output = done.stdout + done.stderr
    # Then the handler's result and its own log lines are there
    assert done.returncode == 0, output
    assert '"statusCode": 200' in output and '"message":"request served"' in output
    # And no server's access-log line (werkzeug's `127.0.0.1 - - [date] "POST / HTTP/1.1" 200 -`)
    access_lines = [line for line in output.splitlines() if re.search(r'"[A-Z]+ \S+ HTTP/1\.[01]" \d{3}', line)]
    assert access_lines == []


# --- what `make serve` installs ----------------------------------------------------------------------------

SERVE_REQUIREMENTS = ROOT / "requirements-serve.txt"
DEV_REQUIREMENTS = ROOT / "requirements-dev.txt"
# Dev tooling outside `make serve`'s install: the benchmark (pyperf, psutil), installed by `make test`.
NOT_SERVED = ("local/gateway_dev/bench/",)
# Imports on paths only the tests take, inside the function that needs them: Template.translated() (samtranslator)
# checks what only runs in the cloud.
TEST_ONLY = {"local/gateway_dev/cloud/template.py: samtranslator"}


def _served_distributions() -> set[str]:
    """The distributions requirements-serve.txt installs, with everything they pull in (as installed here)."""
    from packaging.requirements import Requirement

    roots: list[tuple[str, frozenset[str]]] = []
    for line in requirement_lines(SERVE_REQUIREMENTS):
        if line.startswith("-e "):
            project = tomllib.loads((ROOT / line[3:].strip() / "pyproject.toml").read_text())
            roots.append((project["project"]["name"], frozenset()))
        elif line.startswith("-c "):
            continue  # constraints choose versions; they install nothing
        else:
            requirement = Requirement(line)
            roots.append((requirement.name, frozenset(requirement.extras)))
    return closure(roots)


def _third_party_imports(path: Path) -> dict[str, bool]:
    """{third-party module: imported at module level (not only inside a function, where it runs on use)}."""
    tree = ast.parse(path.read_text())
    in_function = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for inner in ast.walk(node)
    }
    names: dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found = [node.module.split(".")[0]]
        else:
            continue
        for name in found:
            names[name] = names.get(name, False) or id(node) not in in_function
    first_party = {"mistral_gateway", "gateway_dev", "app", "__future__"}
    return {name: top for name, top in names.items() if name not in sys.stdlib_module_names and name not in first_party}


def test_make_serves_install_holds_every_package_the_serving_code_imports() -> None:
    from packaging.utils import canonicalize_name

    # Given what requirements-serve.txt installs, and the code make serve, invoke, keys, chat and smoke run
    served = _served_distributions()
    providers = importlib.metadata.packages_distributions()
    sources = [
        path
        for folder in ("layers/gateway/mistral_gateway", "functions", "local/gateway_dev")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if not str(path.relative_to(ROOT)).startswith(NOT_SERVED)
    ]
    # Then every third-party module that code imports comes from a served distribution
    missing = {
        f"{path.relative_to(ROOT)}: {name}" + (" (module level)" if top else "")
        for path in sources
        for name, top in _third_party_imports(path).items()
        if not {canonicalize_name(d) for d in providers.get(name, [])} & served
    }
    assert missing - TEST_ONLY == set()  # a test-only import hoisted to module level is missing, not exempt


def test_the_dev_requirements_are_the_serve_requirements_plus_the_toolchain_each_pinned_once() -> None:
    serve, dev = requirement_lines(SERVE_REQUIREMENTS), requirement_lines(DEV_REQUIREMENTS)
    assert dev[0] == "-r requirements-serve.txt"

    def names(lines: list[str]) -> list[str]:
        return [re.split(r"[\[=<>]", line)[0].lower() for line in lines if not line.startswith("-")]

    both = set(names(serve)) & set(names(dev[1:]))
    assert both == set() and len(names(dev)) == len(set(names(dev)))
    # The toolchain stays out of make serve's install
    assert {"pytest", "ruff", "mypy", "cfn-lint", "hypothesis", "langchain-core"} <= set(names(dev))
    assert not {"pytest", "ruff", "mypy", "cfn-lint", "hypothesis", "langchain-core"} & set(names(serve))


def test_the_projects_build_backend_is_the_uv_the_makefile_installs() -> None:
    # uv builds a uv_build project in-process only when its own version is in the project's range: a Makefile
    # that moves UV_VERSION without the pyprojects would bring back a slow isolated build on every first run.
    from packaging.requirements import Requirement

    pinned = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert pinned is not None
    uv_version = pinned.group(1)
    for pyproject in (ROOT / "pyproject.toml", ROOT / "layers" / "gateway" / "pyproject.toml"):
        system = tomllib.loads(pyproject.read_text())["build-system"]
        (backend,) = [Requirement(text) for text in system["requires"]]
        assert system["build-backend"] == "uv_build" and backend.name == "uv_build"
        assert backend.specifier.contains(uv_version), f"{pyproject}: {backend} does not admit uv {uv_version}"
