"""`/v1/libraries`: libraries and their documents (upload, list, get, update, delete, status, text, signed
URLs, reprocess)."""

from __future__ import annotations

import uuid
from typing import Any

from werkzeug.wrappers import Response

from gateway_dev.emulator.account import Account, account_route, file_required, now_iso
from gateway_dev.emulator.wire import Call, json_response, not_found


def _libraries(emulator: Any, call: Call, rest: list[str]) -> Response | None:
    account: Account = emulator.account
    method, body = call.method, call.body
    if not rest:
        if method == "POST":
            if not body.get("name"):
                return json_response(422, {"object": "error", "message": "name", "type": "invalid_request_error"})
            library = _new_library(body)
            account.libraries[library["id"]] = library
            account.documents[library["id"]] = {}
            return json_response(201, library)
        if method == "GET":
            return json_response(200, {"data": list(account.libraries.values())})
        return None
    kept = account.libraries.get(rest[0])
    if kept is None:
        return not_found("Library")
    library = kept
    if len(rest) == 1:
        if method == "GET":
            return json_response(200, library)
        if method == "DELETE":
            del account.libraries[rest[0]]
            return json_response(200, library)
        if method in ("PUT", "PATCH"):
            library.update({k: v for k, v in body.items() if k in ("name", "description")}, updated_at=now_iso())
            return json_response(200, library)
    if rest[1:2] != ["documents"]:
        return None
    return _documents(account, call, library, rest[2:])


def _documents(account: Account, call: Call, library: dict[str, Any], rest: list[str]) -> Response | None:
    method, body = call.method, call.body
    documents = account.documents[library["id"]]
    if not rest:
        if method == "POST":
            upload = call.request.files.get("file")
            if upload is None:
                return file_required()
            document = _new_document(library["id"], upload.filename or "document", upload.mimetype, upload.read())
            documents[document["id"]] = document
            library.update(nb_documents=len(documents), total_size=library["total_size"] + document["size"])
            return json_response(201, _view(document))
        if method == "GET":
            data = [_view(d) for d in documents.values()]
            page = {"total_items": len(data), "total_pages": 1, "current_page": 0, "page_size": 100, "has_more": False}
            return json_response(200, {"pagination": page, "data": data})
        return None
    kept = documents.get(rest[0])
    if kept is None:
        return not_found("Document")
    document = kept
    aspect = rest[1:]
    if not aspect:
        if method == "GET":
            return json_response(200, _view(document))
        if method == "DELETE":
            del documents[rest[0]]
            return Response(b"", status=204)
        if method in ("PUT", "PATCH"):
            document.update({k: v for k, v in body.items() if k in ("name",)})
            return json_response(200, _view(document))
    if aspect == ["status"] and method == "GET":
        status = {"document_id": document["id"], "process_status": "done", "processing_status": "Completed"}
        return json_response(200, status)
    if aspect == ["text_content"] and method == "GET":
        return json_response(200, {"text": document["text"]})
    if aspect in (["signed-url"], ["extracted-text-signed-url"]) and method == "GET":
        return json_response(200, f"https://documents.emulator.invalid/{document['id']}?signature=emulated")
    if aspect == ["reprocess"] and method == "POST":
        return Response(b"", status=204)
    return None


def _new_library(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "name": body["name"],
        "description": body.get("description"),
        "created_at": now_iso(),
        "updated_at": now_iso(),
        "owner_id": None,
        "owner_type": "Workspace",
        "total_size": 0,
        "nb_documents": 0,
        "chunk_size": body.get("chunk_size"),
    }


def _new_document(library_id: str, name: str, mimetype: str | None, content: bytes) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "library_id": library_id,
        "hash": None,
        "mime_type": mimetype or None,
        "extension": name.rsplit(".", 1)[-1] if "." in name else None,
        "size": len(content),
        "name": name,
        "created_at": now_iso(),
        "process_status": "done",
        "uploaded_by_id": None,
        "uploaded_by_type": "Workspace",
        "processing_status": "Completed",
        "tokens_processing_total": len(content.split()),
        "text": content.decode("utf-8", "replace"),
    }


def _view(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "text"}


dispatch = account_route("libraries", _libraries)
