"""Browsers can read every header the gateway sets, and send every header it reads."""

from __future__ import annotations

import re
from pathlib import Path

from mistral_gateway.edge import cors

PACKAGE = Path(cors.__file__).parents[1]  # mistral_gateway/, every wing
# Set on answers for proxies, not for scripts.
NOT_FOR_SCRIPTS = {"X-Accel-Buffering"}


def test_every_header_the_gateway_sets_is_exposed() -> None:
    source = "\n".join(path.read_text() for path in PACKAGE.rglob("*.py") if path.name != "cors.py")
    named = set(re.findall(r'"((?:X|RateLimit|Retry)-[A-Za-z-]+)"', source)) - NOT_FOR_SCRIPTS
    assert named <= set(cors.EXPOSED_HEADERS), sorted(named - set(cors.EXPOSED_HEADERS))


def test_every_request_header_the_gateway_reads_is_allowed() -> None:
    callers_side = (
        "requests/http.py",
        "edge/relay_http.py",
        "flow/passthrough.py",
    )  # upstream/ reads Mistral's headers
    source = "\n".join((PACKAGE / name).read_text() for name in callers_side)
    read = {name.lower() for name in re.findall(r'headers\.get\("([a-z-]+)"', source)}
    read |= set(re.findall(r'"(x-[a-z-]+)"', source))  # header names kept in constants too
    allowed = {name.lower() for name in cors.allowed_request_headers()}
    assert read <= allowed | {"content-type"}, sorted(read - allowed)
