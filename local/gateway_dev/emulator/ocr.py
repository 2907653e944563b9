"""`POST /v1/ocr`: one deterministic markdown page per document, named by the document's digest."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Response

from gateway_dev.emulator.wire import Call, digest, invalid_json, json_response, missing


def dispatch(emulator: Any, call: Call) -> Response | None:
    if call.path != "/v1/ocr" or call.method != "POST":
        return None
    if not isinstance(call.payload, dict):
        return invalid_json()
    document = call.payload.get("document")
    if not isinstance(document, dict):
        return missing("document")
    reference = json.dumps(document, sort_keys=True).encode()
    page = {
        "index": 0,
        "markdown": f"# Emulated OCR\n\nDocument {digest(reference, 12)} ({document.get('type', 'document')}).",
        "images": [],
        "dimensions": {"dpi": 200, "height": 2200, "width": 1700},
    }
    usage = {"pages_processed": 1, "doc_size_bytes": len(reference)}
    return json_response(200, {"pages": [page], "model": call.payload.get("model"), "usage_info": usage})
