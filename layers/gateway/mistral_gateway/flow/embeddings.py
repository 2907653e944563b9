"""Embeddings (`POST /v1/embeddings`): one cache entry per input list, served as floats or as the OpenAI
SDK's base64.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import replace
from typing import Any

from mistral_gateway.container import current
from mistral_gateway.flow import answers, checks
from mistral_gateway.flow.answers import Answer, Fetch, Fetched
from mistral_gateway.platform.deadline import Deadline
from mistral_gateway.requests.http import CacheControl


def embeddings(body: dict[str, Any], *, caller: str | None, control: CacheControl, deadline: Deadline) -> Answer:
    checks.check_model(body)
    checks.check_fine_tuned(body, caller)
    form, validated = checks.admitted("EmbeddingRequest", body)
    canonical = dict(form)
    if isinstance(canonical.get("input"), str):
        canonical["input"] = [canonical["input"]]
    local_encoding = canonical.get("output_dtype", "float") == "float"
    if local_encoding and canonical.get("encoding_format") in ("float", "base64"):
        del canonical["encoding_format"]  # one float entry serves both encodings
    if isinstance(canonical.get("metadata"), dict):
        del canonical["metadata"]  # a label, not part of the answer

    def prepare() -> Fetch:
        request = validated or checks.validate("EmbeddingRequest", body)
        from mistral_gateway.upstream import mistral as upstream

        upstream.preflight("embeddings", request.sdk_arguments())

        def fetch() -> Fetched:
            fetched = upstream.embeddings(*current().upstream_and_sdk(), request.sdk_arguments(), deadline)
            return Fetched(fetched.body, fetched.usage, complete=bool(fetched.data.get("data")))

        return fetch

    answer = answers.priced(
        answers.through_cache("embeddings", canonical, caller, control, prepare, deadline, charged=body), body
    )
    if local_encoding and body.get("encoding_format") == "base64":
        return replace(answer, body=_base64_embeddings(answer.body))
    return answer


def _base64_embeddings(body: str) -> str:
    """What the OpenAI SDK asks for by default: each vector as base64 of little-endian float32."""
    data = json.loads(body)
    for item in data.get("data", []):
        vector = item.get("embedding")
        if isinstance(vector, list):
            item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return json.dumps(data)
