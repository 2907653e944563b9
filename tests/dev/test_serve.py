"""`make serve` end to end: start it on a free port, call it with curl-like HTTP and the SDK, stop it with Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BANNER_URL = re.compile(r"is up: (http://127\.0\.0\.1:\d+)")
CALLER_KEY = "serve-test-caller-key"
OTHER_CALLER_KEY = "key-b"  # shorter than API Gateway allows: make serve takes it (usage_plan.stored_value)


@contextmanager
def make_serve(**env: str) -> Iterator[tuple[str, subprocess.Popen[str], list[str]]]:
    """`make serve PORT=0` in its own process group; yields (url, process, output lines so far)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT", "MISTRAL_"))}
    environment.update(GATEWAY_API_KEY=CALLER_KEY, PYTHONUNBUFFERED="1", **env)
    command = ["make", "--no-print-directory", "serve", "PORT=0", f"PYTHON={sys.executable}"]
    process = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        url = _wait_for_banner(process, lines)
        yield url, process, lines
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _wait_for_banner(process: subprocess.Popen[str], lines: list[str]) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    url = None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if match := BANNER_URL.search(line):
            url = match.group(1)
        if url and "Ctrl-C stops everything" in line:  # the banner's last line
            return url
    raise AssertionError("make serve did not come up:\n" + "".join(lines))


def post_chat(url: str, text: str, key: str = CALLER_KEY) -> tuple[int, dict[str, str], Any]:
    body = json.dumps({"model": "mistral-small-latest", "messages": [{"role": "user", "content": text}]}).encode()
    request = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, _lower(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers), json.loads(error.read())


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def stop_with_ctrl_c(process: subprocess.Popen[str], lines: list[str]) -> str:
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    return "".join(lines) + output


def test_make_serve_with_the_emulator_starts_answers_caches_and_stops() -> None:
    # Given `make serve` with no Mistral key and two caller keys (one named in both variables)
    with make_serve(GATEWAY_API_KEYS=f"{CALLER_KEY}, {OTHER_CALLER_KEY}") as (url, process, lines):
        banner = "".join(lines)
        assert "EMULATOR" in banner and CALLER_KEY in banner and OTHER_CALLER_KEY in banner and "curl " in banner
        # When a caller sends the same question twice, and once without a key
        first = post_chat(url, "Hello from the serve test")
        second = post_chat(url, "Hello from the serve test")
        refused = post_chat(url, "Hello", key="wrong-key")
        other = post_chat(url, "Hello from the serve test", key=OTHER_CALLER_KEY)
        # Then the first is a labelled MISS, the repeat a HIT, the stranger is refused with JSON
        assert first[0] == 200 and first[1]["x-cache"] == "MISS" and first[1]["x-mistral-emulator"] == "true"
        assert second[0] == 200 and second[1]["x-cache"] == "HIT" and second[2] == first[2]
        assert refused[0] == 401 and "message" in refused[2]
        # And the other caller is served, from a cache scope of its own
        assert other[0] == 200 and other[1]["x-cache"] == "MISS"
        # And the official SDK works against it unchanged
        from mistralai.client import Mistral

        sdk = Mistral(api_key=CALLER_KEY, server_url=url).chat.complete(
            model="mistral-small-latest", messages=[{"role": "user", "content": "Hello from the serve test"}]
        )
        assert sdk.choices[0].message.content == first[2]["choices"][0]["message"]["content"]
        # And a browser's preflight is answered without a key, as API Gateway answers it
        preflight = urllib.request.Request(f"{url}/v1/ocr", method="OPTIONS", headers={"Origin": "https://app.example"})
        with urllib.request.urlopen(preflight, timeout=30) as answer:
            assert answer.status == 200 and answer.headers["Access-Control-Allow-Origin"] == "*"
        # And Ctrl-C stops everything and frees the port
        output = stop_with_ctrl_c(process, lines)
    assert "stopped: API, moto and upstream emulator are down" in output and "Traceback" not in output
    moto_url = re.search(r"AWS \(moto\)\s*: (http://\S+)", banner)
    assert moto_url is not None
    for stopped in (url, moto_url.group(1)):  # the API's port, and that of moto's own process
        port = int(stopped.rsplit(":", 1)[1])
        with socket.socket() as probe:
            # TIME_WAIT from closed connections is fine (as for any server restart); a listener would refuse.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))  # would raise if anything still listened
    records = [json.loads(line) for line in output.splitlines() if line.startswith('{"level"')]
    assert any(record.get("message") == "request served" for record in records), "function logs reach stdout"


def test_make_serve_calls_a_custom_upstream_with_the_key_it_was_given(emulator: Any) -> None:
    # Given a Mistral-compatible server that accepts only its own key, and `make serve` pointed at it
    emulator.api_key = "custom-upstream-key-42"
    with make_serve(MISTRAL_SERVER_URL=emulator.url, MISTRAL_API_KEY="custom-upstream-key-42") as (url, process, lines):
        assert f"custom upstream at {emulator.url}" in "".join(lines)
        # When a caller asks
        status, headers, answer = post_chat(url, "Hello custom upstream")
        stop_with_ctrl_c(process, lines)
    # Then that server was called with that key, read back from the local secret
    assert status == 200 and answer["object"] == "chat.completion"
    assert "x-mistral-emulator" not in headers  # only the bundled emulator is labelled
    assert emulator.requests[-1].headers["authorization"] == "Bearer custom-upstream-key-42"


def test_make_serve_streams_event_by_event() -> None:
    import httpx2

    # Given `make serve` with the emulator writing a 4 s answer (10 words a second, 40 words)
    with make_serve(EMULATOR_TOKENS_PER_SECOND="10", EMULATOR_ANSWER_TOKENS="40") as (url, process, lines):
        arrivals: list[float] = []
        request = {"model": "mistral-small-latest", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
        auth = {"Authorization": f"Bearer {CALLER_KEY}"}
        with httpx2.stream("POST", f"{url}/v1/chat/completions", json=request, headers=auth, timeout=30) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    arrivals.append(time.monotonic())
        stop_with_ctrl_c(process, lines)
    # Then the events arrived over the answer's lifetime, not all at once at the end
    assert response.status_code == 200 and len(arrivals) > 40
    assert arrivals[-1] - arrivals[0] > 2.0


def test_shell_variables_win_over_the_templates_defaults() -> None:
    from gateway_dev.cloud.template import Template
    from gateway_dev.runner.serve import apply_function_environments

    environ = {"REQUEST_DEADLINE_MS": "2000"}
    apply_function_environments(Template(), environ)
    assert environ["REQUEST_DEADLINE_MS"] == "2000" and environ["CACHE_TTL_SECONDS"] == "86400"


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "gateway_dev.runner.serve", "--port", str(port)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def test_a_taken_moto_port_is_a_clear_error_not_a_hang(capfd: pytest.CaptureFixture[str]) -> None:
    from gateway_dev.runner.moto_process import start_moto

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="did not start"):
            start_moto("127.0.0.1", port)  # `make moto` with MOTO_PORT in use
    assert f"cannot listen on 127.0.0.1:{port}" in capfd.readouterr().err


def test_caller_keys_come_from_both_variables_each_key_once() -> None:
    from gateway_dev.runner.serve import caller_keys_from_env

    keys = caller_keys_from_env({"GATEWAY_API_KEY": "key-a", "GATEWAY_API_KEYS": "key-b, key-a,,key-c "})
    assert keys == {"key-a": "local-caller", "key-b": "local-caller-2", "key-c": "local-caller-3"}
    assert caller_keys_from_env({"GATEWAY_API_KEYS": "key-b"}) == {"key-b": "local-caller"}
    generated = caller_keys_from_env({})
    assert len(generated) == 1 and next(iter(generated)).startswith("local-")
