"""`make openapi`: write docs/openapi.json from the code (the same document GET /openapi.json serves)."""

from __future__ import annotations

import json
import os
import sys

from gateway_dev.cloud.apigw import proxy_event
from gateway_dev.cloud.template import ROOT, Template
from gateway_dev.runner import spend_delivery
from gateway_dev.runner.functions import handler_module, load_function


def main() -> int:
    template = Template()
    os.environ[spend_delivery.OFF] = "1"  # no stack here: the served line of this one read has no table to count in
    load_function(template, "ApiFunction")
    module = handler_module(template, "ApiFunction")
    result = module.app.resolve(proxy_event("GET", "/openapi.json"), None)  # stage "prod": servers "/prod"
    spec = json.loads(result["body"])
    path = ROOT / "docs" / "openapi.json"
    path.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({len(spec['paths'])} paths)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
