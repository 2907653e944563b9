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
    # Every wing but upstream/, which reads Mistral's headers, not the caller's
    callers_side = [path for path in PACKAGE.rglob("*.py") if "upstream" not in path.parts and path.name != "cors.py"]
    source = "\n".join(path.read_text() for path in callers_side)
    read = {name.lower() for name in re.findall(r'headers\.get\("([a-z-]+)"', source)}
    read |= set(re.findall(r'"(x-[a-z-]+)"', source))  # header names kept in constants too
    from mistral_gateway.flow import relay

    read |= {name.lower() for name in relay.FORWARDED_HEADERS}  # what the pass-through forwards from the caller
    allowed = {name.lower() for name in cors.allowed_request_headers()}
    safelisted = {"content-type", "accept", "accept-language", "content-language"}  # CORS never preflights these
    assert read <= allowed | safelisted, sorted(read - allowed - safelisted)
