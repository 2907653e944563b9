"""`/v1/files`: upload, list, get, delete, content and signed URL of the account's files."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from gateway_dev.emulator.account import Account, account_route, file_required, listing
from gateway_dev.emulator.wire import Call, json_response, not_found


def _files(emulator: Any, call: Call, rest: list[str]) -> Response | None:
    account: Account = emulator.account
    method = call.method
    if not rest:
        if method == "POST":
            upload = call.request.files.get("file")
            if upload is None:
                return file_required()
            purpose = call.request.form.get("purpose", "fine-tune")
            return json_response(200, account.add_file(upload.filename or "upload", upload.read(), purpose))
        if method == "GET":
            return json_response(200, listing([meta for meta, _ in account.files.values()]))
        return None
    found = account.files.get(rest[0])
    if found is None:
        return not_found("File")
    meta, content = found
    if len(rest) == 1 and method == "GET":
        return json_response(200, {**meta, "deleted": False})
    if len(rest) == 1 and method == "DELETE":
        del account.files[rest[0]]
        return json_response(200, {"id": rest[0], "object": "file", "deleted": True})
    if rest[1:] == ["content"] and method == "GET":
        return Response(content, status=200, content_type="application/octet-stream")
    if rest[1:] == ["url"] and method == "GET":
        return json_response(200, {"url": f"https://files.emulator.invalid/{rest[0]}?signature=emulated"})
    return None


dispatch = account_route("files", _files)
