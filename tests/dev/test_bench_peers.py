"""The bench's side-by-side pieces (`make bench PEERS=litellm`) and its prompt-size figure, without installing LiteLLM:
the pin, the install steps and checks, the proxy's config, the comparison run against stand-ins on 127.0.0.1, and the
report. Nothing here checks how fast anything is: the bench measures that."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway_dev.bench.peers import litellm
from gateway_dev.bench.peers.side_by_side import CONCURRENT, PeerFigures, Side, compare, peer_rows
from gateway_dev.bench.prompt_size import PROMPT_BYTES, prompt_of, prompt_sizes
from gateway_dev.bench.report.tables import peers_block
from gateway_dev.bench.settings import MODEL
from gateway_dev.bench.stats import stats
from gateway_dev.cloud.template import ROOT

# --- the pin and the install -------------------------------------------------------------------------------------


def test_the_pin_is_not_a_compromised_release_and_installs_into_its_own_venv(tmp_path: Path) -> None:
    assert litellm.VERSION not in litellm.COMPROMISED
    venv = litellm.venv_dir(tmp_path / ".bench")
    assert venv == tmp_path / ".bench" / "peers" / f"litellm-{litellm.VERSION}"
    create, install = litellm.install_commands(venv)
    assert create[1:] == ["-m", "venv", str(venv)]
    assert install[0] == str(venv / "bin" / "python")  # pip of the peer's venv, never the project's
    assert install[-1] == f"litellm[proxy]=={litellm.VERSION}"  # exactly the pin


@pytest.mark.parametrize("version", sorted(litellm.COMPROMISED))
def test_a_compromised_release_is_refused_before_anything_is_installed(tmp_path: Path, version: str) -> None:
    with pytest.raises(ValueError, match="compromised"):
        litellm.install_commands(tmp_path / "venv", version)


def fake_venv(root: Path, version: str) -> Path:
    site = root / "lib" / "python3.11" / "site-packages"
    (site / f"litellm-{version}.dist-info").mkdir(parents=True)
    return root


def test_an_installed_venv_is_checked_for_the_pin_and_the_compromised_hook(tmp_path: Path) -> None:
    clean = fake_venv(tmp_path / "clean", litellm.VERSION)
    litellm.check_install(clean)  # the pinned version and no hook: accepted
    other = fake_venv(tmp_path / "other", "1.82.6")
    with pytest.raises(RuntimeError, match="not the pinned"):
        litellm.check_install(other)
    hooked = fake_venv(tmp_path / "hooked", litellm.VERSION)
    (hooked / "lib" / "python3.11" / "site-packages" / litellm.MALICIOUS_FILE).write_text("import os")
    with pytest.raises(RuntimeError, match="compromised"):
        litellm.check_install(hooked)


def test_the_proxy_is_configured_with_its_memory_cache_and_the_runs_emulator(tmp_path: Path) -> None:
    path = litellm.write_config(tmp_path / "litellm.yaml", "http://127.0.0.1:9", "emulator-key", MODEL)
    config = json.loads(path.read_text())  # YAML is a superset of JSON
    (model,) = config["model_list"]
    assert model["model_name"] == MODEL
    assert model["litellm_params"] == {
        "model": f"mistral/{MODEL}",
        "api_base": "http://127.0.0.1:9/v1",
        "api_key": "emulator-key",
    }
    assert config["litellm_settings"]["cache"] is True and config["litellm_settings"]["cache_params"] == {
        "type": "local"
    }
    assert config["general_settings"]["master_key"].startswith("sk-")


# --- the comparison, against stand-ins ---------------------------------------------------------------------------


def test_every_side_by_side_figure_is_measured_for_both_sides(http_gateway: str, emulator: Any) -> None:
    # Given the gateway under the local runner and, standing in for the peer, the emulator itself
    gateway = Side("gateway", http_gateway, None, cache_header=True)
    peer = Side("peer", emulator.url, emulator.api_key)
    # When the comparison runs once
    pairs = compare(gateway, peer, emulator, "peers-test", iterations=1, warmup=0)
    # Then each figure has a sample on both sides and a ratio
    assert {pair.figure for pair in pairs} == {
        "hit",
        "miss overhead",
        "TTFT added",
        "cached replay, first event",
        f"{CONCURRENT} concurrent misses",
        f"{CONCURRENT} concurrent streams",
    }
    for pair in pairs:
        assert len(pair.gateway.samples) == len(pair.peer.samples) == 1, pair.figure
        assert math.isfinite(pair.ratio) or pair.peer.median == 0
    # And the gateway's repeated request really was a hit (compare checks its X-Cache), its misses reached Mistral
    assert emulator.calls("/v1/chat/completions") >= 2 * CONCURRENT * 2


def test_the_gateway_side_is_make_serve_in_a_process_of_its_own(emulator: Any, template: Any, tmp_path: Path) -> None:
    from gateway_dev.bench.peers import served
    from gateway_dev.bench.settings import CALLER_KEY, CHAT_PATH
    from gateway_dev.bench.stack import chat_body
    from gateway_dev.bench.streaming.client import caller_headers, http_client

    # Given the bench's stack (its emulator and key), and the gateway served for the side-by-side figures
    stack = SimpleNamespace(template=template, emulator=emulator, mistral_key=emulator.api_key)
    gateway = served.serve(stack, tmp_path / "served.log")  # type: ignore[arg-type]
    try:
        # Then it answers the bench's caller key, calls the run's emulator, and caches in its own moto
        with http_client() as client:
            first, again = (
                client.post(gateway.url + CHAT_PATH, json=chat_body("served side"), headers=caller_headers(CALLER_KEY))
                for _ in range(2)
            )
        assert (first.status_code, first.headers["x-cache"]) == (200, "MISS")
        assert (again.status_code, again.headers["x-cache"]) == (200, "HIT")
        assert any(r.path == CHAT_PATH and "served side" in json.dumps(r.json) for r in emulator.requests)
    finally:
        gateway.stop()
    # And it stopped cleanly on SIGTERM, moto's process and all, as Ctrl-C stops make serve
    log = (tmp_path / "served.log").read_text()
    assert gateway.process.returncode == 0 and "stopped: API, moto and upstream emulator are down" in log
    assert "Traceback" not in log


def test_the_side_by_side_table_reports_ratios_and_says_when_it_was_not_run() -> None:
    assert "PEERS=litellm" in peers_block(SimpleNamespace(peers=[]))  # type: ignore[arg-type]
    figures = PeerFigures(
        "litellm", litellm.VERSION, [_pair("hit", 2.0, 4.0)], peer_cold_ms=1000.0, gateway_cold_ms=250.0,
        peer_rss_mb=200.0, gateway_rss_mb=80.0,
    )  # fmt: skip
    rows = peer_rows(figures)
    assert rows[0][0] == "hit" and rows[0][3].startswith("0.50")
    assert rows[-2][0].startswith("cold start") and rows[-2][3].startswith("0.25")
    assert rows[-1][0] == "peak RSS" and rows[-1][3].startswith("0.40")
    table = peers_block(SimpleNamespace(peers=[figures]))  # type: ignore[arg-type]
    assert f"litellm {litellm.VERSION}" in table and "0.50" in table


def _pair(figure: str, gateway_ms: float, peer_ms: float) -> Any:
    from gateway_dev.bench.peers.side_by_side import Pair

    return Pair(figure, stats([gateway_ms]), stats([peer_ms]))


def test_an_unknown_peer_is_refused_before_anything_is_measured(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway_dev.bench", "--smoke", "--peers", "nope", "--work", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2 and "unknown peer" in done.stderr
    assert not (tmp_path / "results.json").exists()


@pytest.mark.parametrize(("peers", "expected"), [("litellm", "--peers litellm"), ("", None)])
def test_make_bench_passes_peers_only_when_asked(peers: str, expected: str | None) -> None:
    done = subprocess.run(
        ["make", "-n", "bench", f"PEERS={peers}", "STAMP="], capture_output=True, text=True, check=True, cwd=ROOT
    )
    command = next(line for line in done.stdout.splitlines() if "gateway_dev.bench" in line)
    assert (expected in command) if expected else ("--peers" not in command)


# --- figure 13: overhead against prompt size ----------------------------------------------------------------------


def test_prompts_have_exactly_their_size_and_never_repeat() -> None:
    for size in PROMPT_BYTES:
        one, other = prompt_of(size, f"a {size}"), prompt_of(size, f"b {size}")
        assert len(one.encode()) == len(other.encode()) == size and one != other


def test_misses_are_measured_by_prompt_size_against_the_emulator(http_gateway: str, emulator: Any) -> None:
    sized = prompt_sizes(http_gateway, None, emulator, "size-test", iterations=1, warmup=0, sizes=(1_000, 10_000))
    assert [one.prompt_bytes for one in sized] == [1_000, 10_000]
    assert all(len(one.miss.samples) == len(one.first_event.samples) == 1 for one in sized)
    # Each size asked Mistral four times: a plain and a streamed miss through the gateway, and both straight
    assert emulator.calls("/v1/chat/completions") == 2 * 4
