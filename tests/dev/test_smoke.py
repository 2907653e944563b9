"""`make smoke` and `keys --local` against `make serve` itself (a real process, its keys in its moto's usage plan)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_serve import CALLER_KEY, ROOT, make_serve, post_chat

from gateway_dev.cloud.usage_plan import KEY_CHECK_MAX_AGE_SECONDS, STATE_ENV
from gateway_dev.ops import keys_cli, smoke


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "local-gateway.json"
    monkeypatch.setenv(STATE_ENV, str(path))
    return path


def test_make_smoke_passes_against_make_serve_with_a_throwaway_key(state: Path) -> None:
    with make_serve(**{STATE_ENV: str(state)}) as (url, _process, _lines):
        assert json.loads(state.read_text())["url"] == url
        result = subprocess.run(
            ["make", "--no-print-directory", "smoke", f"URL={url}", f"KEY={CALLER_KEY}", "ARGS=--local",
             f"PYTHON={sys.executable}"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        listed = io.StringIO()
        assert keys_cli.main(["--local", "--json", "list"], out=listed) == 0
    lines = [line for line in result.stdout.splitlines() if line[:4] in ("PASS", "FAIL", "SKIP")]
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(lines) == 9 and all(line.startswith("PASS") for line in lines)
    assert any("TTFT" in line for line in lines)
    throwaway = [row for row in json.loads(listed.getvalue()) if row["name"].startswith("smoke-")]
    assert [row["status"] for row in throwaway] == ["revoked"]  # revoked after the run


def test_a_key_made_with_the_cli_works_at_once_and_stops_at_once_in_make_serve(state: Path) -> None:
    with make_serve(**{STATE_ENV: str(state)}) as (url, _process, lines):
        out = io.StringIO()
        assert keys_cli.main(["--local", "--json", "create", "app-x"], out=out) == 0
        key = json.loads(out.getvalue())["key"]
        assert post_chat(url, "from a new key", key=key)[0] == 200
        assert keys_cli.main(["--local", "revoke", "app-x"], out=io.StringIO()) == 0
        time.sleep(KEY_CHECK_MAX_AGE_SECONDS + 0.1)
        status, _, body = post_chat(url, "after revocation", key=key)
        assert status == 401 and body["type"] == "authentication_error"
        assert post_chat(url, "the env key goes on")[0] == 200
        assert key not in "".join(lines)  # the key's value never reaches a log line


def test_smoke_without_a_gateway_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke.main(["--url", "", "--key", ""]) == 2
    assert "URL=" in capsys.readouterr().err
