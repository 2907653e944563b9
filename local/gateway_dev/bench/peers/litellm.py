"""The LiteLLM proxy as a peer: a pinned release in its own venv, configured with its in-memory cache and pointed
at the run's Mistral emulator.

The pin was checked against the published advisories (docs/decisions.md): 1.82.7 and 1.82.8 were compromised
releases (a `litellm_init.pth` that ran a credential stealer at every interpreter start), later proxy CVEs were
fixed by 1.83.x/1.84.0, and none we found names 1.108.7. The install refuses the compromised versions and checks
the venv holds no `litellm_init.pth`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway_dev.bench.processes import rss_kb, stop, wait_until_answering

VERSION = "1.108.7"
COMPROMISED = frozenset({"1.82.7", "1.82.8"})
MALICIOUS_FILE = "litellm_init.pth"
MASTER_KEY = "sk-bench-peer-key"  # the proxy's own key for the bench's client (LiteLLM wants the sk- prefix)


def venv_dir(work: Path, version: str = VERSION) -> Path:
    return work / "peers" / f"litellm-{version}"


def install_commands(venv: Path, version: str = VERSION) -> list[list[str]]:
    """What `install` runs: a venv of its own, then the pinned proxy into it (never the project's venv)."""
    if version in COMPROMISED:
        raise ValueError(f"LiteLLM {version} was a compromised release; pin another")
    return [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"litellm[proxy]=={version}"],
    ]


def install(work: Path, version: str = VERSION) -> Path:
    """The proxy's executable, installing the pinned release first if its venv is not there yet."""
    venv = venv_dir(work, version)
    executable = venv / "bin" / "litellm"
    if not executable.exists():
        if venv.is_symlink():  # a link to a venv that is gone
            venv.unlink()
        elif venv.exists():  # a half-built venv (an install that was cut): start again
            shutil.rmtree(venv)
        for command in install_commands(venv, version):
            subprocess.run(command, check=True, timeout=1_800)
    check_install(venv, version)
    return executable


def check_install(venv: Path, version: str = VERSION) -> None:
    """Refuse a venv holding the compromised releases' start-up hook, or another version than the pin."""
    hooks = sorted(str(path) for path in venv.rglob(MALICIOUS_FILE))
    if hooks:
        raise RuntimeError(f"{', '.join(hooks)}: the compromised LiteLLM releases' hook; delete {venv} and check")
    installed = sorted(venv.glob("lib/python*/site-packages/litellm-*.dist-info"))
    names = [path.name.removesuffix(".dist-info").split("-", 1)[1] for path in installed]
    if names != [version]:
        raise RuntimeError(f"{venv} holds LiteLLM {names or 'nothing'}, not the pinned {version}")


def config(emulator_url: str, mistral_key: str, model: str) -> dict[str, Any]:
    """The proxy's config: the run's model served by the emulator, the in-memory cache on, no database."""
    return {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {
                    "model": f"mistral/{model}",
                    "api_base": f"{emulator_url}/v1",
                    "api_key": mistral_key,
                },
            }
        ],
        "litellm_settings": {"cache": True, "cache_params": {"type": "local"}, "telemetry": False},
        "general_settings": {"master_key": MASTER_KEY},
    }


def write_config(path: Path, emulator_url: str, mistral_key: str, model: str) -> Path:
    """YAML is a superset of JSON: the config is written as JSON, with no YAML library."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config(emulator_url, mistral_key, model), indent=2) + "\n")
    return path


@dataclass
class Proxy:
    process: subprocess.Popen[bytes]
    url: str
    ready_s: float  # spawn to its liveness route answering

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident memory of the proxy's process, in MB, from /proc."""
        return rss_kb(self.process.pid, "VmRSS") / 1024, rss_kb(self.process.pid) / 1024

    def stop(self) -> None:
        stop(self.process)


def start(executable: Path, config_path: Path, port: int, *, log: Path, timeout_s: float = 120.0) -> Proxy:
    """The proxy on 127.0.0.1:`port`, once its liveness route answers."""
    import httpx2

    environment = {**os.environ, "LITELLM_TELEMETRY": "False", "LITELLM_LOG": "ERROR"}
    started = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(executable), "--config", str(config_path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=sink, stderr=subprocess.STDOUT, env=environment,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def live() -> bool:
        return httpx2.get(f"{url}/health/liveliness", timeout=1.0, trust_env=False).status_code == 200

    wait_until_answering(process, live, what="the LiteLLM proxy", log=log, timeout_s=timeout_s)
    return Proxy(process, url, time.perf_counter() - started)
