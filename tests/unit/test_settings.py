"""The settings table: one default per variable, which the template and the README agree with."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from gateway_dev.cloud.template import ROOT, Template
from mistral_gateway.platform.config import Settings

# Named after the stack's own resources in the template; their defaults only serve `make serve` and tests.
RESOURCE_NAMES = {
    "CACHE_TABLE_NAME",
    "MISTRAL_SECRET_ID",
    "QUOTA_TABLE_NAME",
    "LEDGER_TABLE_NAME",
    "RESPONSES_TABLE_NAME",
}


def readme_rows() -> dict[str, str]:
    """README configuration table: variable -> its Default cell."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        for variable in re.findall(r"\[`([A-Z0-9_]+)`\]", cells[0] if cells else ""):
            rows[variable] = cells[1]
    return rows


def variables() -> dict[str, Any]:
    """Every variable the gateway reads, with its default."""
    return {spec.metadata["env"]: getattr(Settings(), spec.name) for spec in fields(Settings)}


def shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def test_each_variable_is_parsed_with_its_default_when_unset_or_blank() -> None:
    defaults = Settings()
    assert Settings.from_env({}) == defaults
    assert Settings.from_env({"CACHE_TTL_SECONDS": "  "}).cache_ttl_seconds == defaults.cache_ttl_seconds
    configured = Settings.from_env(
        {"CACHE_TTL_SECONDS": "60", "LOG_PROMPTS": "TRUE", "ALLOWED_MODELS": "a, b,", "MISTRAL_SERVER_URL": "http://x/"}
    )
    assert configured.cache_ttl_seconds == 60 and configured.log_prompts is True
    assert configured.allowed_models == frozenset({"a", "b"}) and configured.server_url == "http://x"


def test_safety_floors_hold_against_typos() -> None:
    floored = Settings.from_env(
        {"UPSTREAM_MAX_ATTEMPTS": "0", "STREAM_KEEPALIVE_MS": "1", "STALE_IF_ERROR_SECONDS": "-5"}
    )
    assert (floored.upstream_max_attempts, floored.stream_keepalive_ms, floored.stale_if_error_seconds) == (1, 100, 0)


def test_malformed_json_settings_turn_their_feature_off() -> None:
    broken = Settings.from_env({"FALLBACK_CHAINS": "{nope", "MODEL_PRICES": '{"m": 3}'})
    assert broken.fallback_chains == {} and broken.model_prices == {}
    chained = Settings.from_env({"FALLBACK_CHAINS": '{"large": ["small", "self-hosted:small"]}'})
    assert chained.fallback_chains == {"large": ("small", "self-hosted:small")}


def test_units_are_in_the_names() -> None:
    units = ("_ms", "_seconds", "_bytes", "_tokens", "_items", "_threshold", "_attempts", "_concurrency")
    for spec in fields(Settings):
        if spec.type in ("int", "float"):
            assert spec.name.endswith(units) and spec.metadata["env"].lower().endswith(units), spec.name


@pytest.mark.parametrize("function", ["ApiFunction", "StreamFunction"])
def test_the_template_defaults_agree_with_the_settings_table(function: str) -> None:
    environment = Template().function_environment(function)
    from_template = Settings.from_env(environment)
    for spec in fields(Settings):
        variable = spec.metadata["env"]
        if variable in environment and variable not in RESOURCE_NAMES:
            assert getattr(from_template, spec.name) == getattr(Settings(), spec.name), variable


def test_the_readme_lists_every_variable_with_its_default() -> None:
    rows = readme_rows()
    for variable, default in variables().items():
        assert variable in rows, f"{variable} is missing from the README's configuration table"
        cell = rows[variable]
        if cell.startswith("`"):  # a literal default (empty ones are described in words)
            assert cell.strip("`") == shown(default), variable


def test_the_readme_documents_no_variable_the_gateway_does_not_read() -> None:
    known = set(variables()) | {"POWERTOOLS_LOG_LEVEL"}
    assert set(readme_rows()) <= known


def test_the_settings_module_reads_no_variable_outside_the_table() -> None:
    source = Path(Settings.__module__.replace(".", "/") + ".py")
    text = (ROOT / "layers" / "gateway" / source).read_text()
    assert "os.environ.get(" not in text and "os.getenv" not in text
