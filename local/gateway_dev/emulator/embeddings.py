"""`POST /v1/embeddings`: a deterministic unit vector per input, as floats or base64 (`encoding_format`)."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

from werkzeug.wrappers import Response

from gateway_dev.emulator.wire import INVALID, Call, digest, invalid_json, json_response, missing

EMBEDDING_DIMENSIONS = 1024


def dispatch(emulator: Any, call: Call) -> Response | None:
    if call.path != "/v1/embeddings":
        return None
    if call.method != "POST":
        return json_response(405, {"detail": "Method Not Allowed"})
    if call.payload is INVALID or not isinstance(call.payload, dict):
        return invalid_json()
    body = call.payload
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(body.get("model"), str) or not isinstance(inputs, list) or not inputs:
        return missing("input")
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(inputs):
        vector = embedding(str(text))
        value: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "embedding": value, "index": index})
    tokens = max(1, sum(len(str(text).split()) for text in inputs))
    usage = {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens}
    body = {"id": "emu-" + digest(call.raw), "object": "list", "model": body["model"], "data": data, "usage": usage}
    return json_response(200, body)


def embedding(text: str) -> list[float]:
    """A deterministic unit vector for `text`."""
    values: list[float] = []
    counter = 0
    while len(values) < EMBEDDING_DIMENSIONS:
        digest_bytes = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((byte - 127.5) / 127.5 for byte in digest_bytes)
        counter += 1
    values = values[:EMBEDDING_DIMENSIONS]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]
