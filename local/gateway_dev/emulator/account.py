"""The emulator's account routes: files, batch jobs, fine-tuning jobs, agents (+versions), conversations
(start, append, history, messages, restart; streamed with stream=true), libraries with documents, voices.

One in-memory account, as Mistral's is: every route here sees everything (isolation is the gateway's job).
Shapes follow the mistralai 3.7 SDK's models, so `Mistral(server_url=...)` parses every answer. Ids are random
(uuid4), as Mistral's are, so two uploads of the same bytes are two files. A batch job completes
`batch_seconds` after it was created (read on the next GET), with an output file of one chat answer per
input line and the job's usage in its `outputs`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _missing(kind: str) -> Response:
    return _json(
        404, {"object": "error", "message": f"{kind} not found", "type": "invalid_request_error", "code": "3000"}
    )


@dataclass
class Account:
    batch_seconds: float = 2.0
    files: dict[str, tuple[dict[str, Any], bytes]] = field(default_factory=dict)
    batch_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    ft_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    agents: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # id -> versions
    conversations: dict[str, dict[str, Any]] = field(default_factory=dict)
    libraries: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # library -> id -> document
    voices: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    # -- files ------------------------------------------------------------------------------------------------
    def add_file(self, filename: str, content: bytes, purpose: str, source: str = "upload") -> dict[str, Any]:
        meta = {
            "id": str(uuid.uuid4()),
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "sample_type": "batch_result"
            if source == "mistral"
            else "batch_request"
            if purpose == "batch"
            else "ocr_input",
            "source": source,
            "num_lines": content.count(b"\n") if purpose == "batch" else None,
            "mimetype": "application/jsonl" if filename.endswith(".jsonl") else "application/octet-stream",
            "signature": None,
        }
        self.files[str(meta["id"])] = (meta, content)
        return meta

    # -- batch jobs -------------------------------------------------------------------------------------------
    def settle_batch(self, emulator: Any, job: dict[str, Any]) -> None:
        """QUEUED until batch_seconds have passed, then SUCCESS with an output file (or CANCELLED stays)."""
        if job["status"] != "QUEUED" or time.time() - job["created_at"] < self.batch_seconds:
            return
        lines, errors, usage = [], [], {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for file_id in job["input_files"]:
            _, content = self.files.get(file_id, ({}, b""))
            for raw in content.splitlines():
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                    body = {"model": job.get("model") or "mistral-small-latest", **line["body"]}
                    answer = json.loads(emulator.chat_answer(body, raw).get_data())
                    for key in usage:
                        usage[key] += answer["usage"][key]
                    lines.append({"custom_id": line.get("custom_id"), "response": {"status_code": 200, "body": answer}})
                except (ValueError, KeyError, TypeError):
                    errors.append({"message": "invalid line", "count": 1})
        output = "".join(json.dumps(line) + "\n" for line in lines).encode()
        job["output_file"] = self.add_file(f"{job['id']}.jsonl", output, "batch", source="mistral")["id"]
        if errors:
            error_lines = "".join(json.dumps(error) + "\n" for error in errors).encode()
            job["error_file"] = self.add_file(f"{job['id']}-errors.jsonl", error_lines, "batch", "mistral")["id"]
        job.update(
            status="SUCCESS",
            total_requests=len(lines) + len(errors),
            completed_requests=len(lines) + len(errors),
            succeeded_requests=len(lines),
            failed_requests=len(errors),
            started_at=job["created_at"],
            completed_at=int(time.time()),
            outputs=[{"usage": usage}],
        )

    # -- conversations ----------------------------------------------------------------------------------------
    def answer_turn(self, emulator: Any, conversation: dict[str, Any], inputs: Any) -> dict[str, Any]:
        """Append the inputs and an assistant answer; the turn's ConversationResponse."""
        entries = conversation["entries"]
        if isinstance(inputs, str):
            inputs = [{"role": "user", "content": inputs}]
        for item in inputs if isinstance(inputs, list) else []:
            if isinstance(item, dict):
                entries.append(
                    {
                        "object": "entry",
                        "type": "message.input",
                        "role": item.get("role", "user"),
                        "content": item.get("content", ""),
                        "id": "msg_" + uuid.uuid4().hex,
                        "created_at": _now_iso(),
                    }
                )
        messages = [{"role": e["role"], "content": e["content"]} for e in entries if e["type"].startswith("message")]
        body = {"model": conversation.get("model") or "mistral-small-latest", "messages": messages}
        answer = json.loads(emulator.chat_answer(body, json.dumps(body).encode()).get_data())
        output = {
            "object": "entry",
            "type": "message.output",
            "role": "assistant",
            "content": answer["choices"][0]["message"]["content"],
            "id": "msg_" + uuid.uuid4().hex,
            "created_at": _now_iso(),
            "completed_at": _now_iso(),
            "model": body["model"],
            "agent_id": conversation.get("agent_id"),
        }
        entries.append(output)
        conversation["updated_at"] = _now_iso()
        usage = {**answer["usage"], "connector_tokens": None}
        return {
            "object": "conversation.response",
            "conversation_id": conversation["id"],
            "outputs": [output],
            "usage": usage,
        }

    def new_conversation(self, body: dict[str, Any]) -> dict[str, Any]:
        agent_id = body.get("agent_id")
        model = body.get("model")
        if isinstance(agent_id, str) and agent_id in self.agents:
            model = self.agents[agent_id][-1]["model"]
        conversation = {
            "object": "conversation",
            "id": "conv_" + uuid.uuid4().hex,
            "created_at": _now_iso(),
            "updated_at": _now_iso(),
            "model": model or "mistral-small-latest",
            "name": body.get("name"),
            "description": body.get("description"),
            "instructions": body.get("instructions"),
            "tools": body.get("tools") or [],
            "completion_args": body.get("completion_args") or {},
            "entries": [],
        }
        if agent_id:
            conversation["agent_id"] = agent_id
            conversation["agent_version"] = 0
        self.conversations[str(conversation["id"])] = conversation
        return conversation


def _fault(request: Request) -> Any:
    from gateway_dev.emulator.server import FAULT_KEY

    return request.environ.get(FAULT_KEY)


def conversation_view(conversation: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in conversation.items() if key != "entries"}


def streamed_turn(turn: dict[str, Any], delay: float = 0.0, fault: Any = None) -> Response:
    """A conversation turn as Mistral streams it: started, the answer's words as deltas, done. A scripted
    fault's gate holds the stream before its third event (as chat's), and `stream_cut` ends it there."""
    output = turn["outputs"][0]

    def events() -> Any:
        yield _event({"type": "conversation.response.started", "conversation_id": turn["conversation_id"]})
        words = str(output["content"]).split(" ")
        for index, word in enumerate(words):
            if fault is not None and index == 1:
                if fault.gate is not None:
                    fault.gate.wait(30)
                if fault.stream_cut:
                    return
            if delay:
                time.sleep(delay)
            delta = {
                "type": "message.output.delta",
                "id": output["id"],
                "output_index": 0,
                "content_index": 0,
                "model": output["model"],
                "agent_id": output.get("agent_id"),
                "role": "assistant",
                "content": word if index == 0 else " " + word,
                "created_at": output["created_at"],
            }
            yield _event(delta)
        yield _event({"type": "conversation.response.done", "usage": turn["usage"]})

    return Response(events(), status=200, content_type="text/event-stream")


def _event(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def dispatch(emulator: Any, request: Request, payload: Any) -> Response | None:
    """The answer for an account route, or None when the path is not one of them."""
    account: Account | None = getattr(emulator, "account", None)
    if account is None:
        account = emulator.account = Account()
    parts = request.path.strip("/").split("/")[1:]  # without "v1"
    if not parts:
        return None
    body = payload if isinstance(payload, dict) else {}
    handler = _HANDLERS.get(parts[0] if parts[0] != "audio" else "/".join(parts[:2]))
    if handler is None:
        return None
    if parts[0] == "audio":
        parts = ["voices", *parts[2:]]
    with account.lock:
        response: Response | None = handler(emulator, account, request, request.method, parts[1:], body)
        return response


def _files(emulator: Any, account: Account, request: Request, method: str, rest: list[str], body: Any) -> Any:
    if not rest:
        if method == "POST":
            upload = request.files.get("file")
            if upload is None:
                return _json(422, {"object": "error", "message": "file is required", "type": "invalid_request_error"})
            meta = account.add_file(
                upload.filename or "upload", upload.read(), request.form.get("purpose", "fine-tune")
            )
            return _json(200, meta)
        if method == "GET":
            data = [meta for meta, _ in account.files.values()]
            return _json(200, {"data": data, "object": "list", "total": len(data)})
        return None
    found = account.files.get(rest[0])
    if found is None:
        return _missing("File")
    meta, content = found
    if len(rest) == 1 and method == "GET":
        return _json(200, {**meta, "deleted": False})
    if len(rest) == 1 and method == "DELETE":
        del account.files[rest[0]]
        return _json(200, {"id": rest[0], "object": "file", "deleted": True})
    if rest[1:] == ["content"] and method == "GET":
        return Response(content, status=200, content_type="application/octet-stream")
    if rest[1:] == ["url"] and method == "GET":
        return _json(200, {"url": f"https://files.emulator.invalid/{rest[0]}?signature=emulated"})
    return None


def _batch(emulator: Any, account: Account, request: Request, method: str, rest: list[str], body: Any) -> Any:
    if rest[:1] != ["jobs"]:
        return None
    rest = rest[1:]
    if not rest:
        if method == "POST":
            inputs = body.get("input_files")
            if not isinstance(inputs, list) or not body.get("endpoint"):
                return _json(
                    422, {"object": "error", "message": "input_files and endpoint", "type": "invalid_request_error"}
                )
            if any(file_id not in account.files for file_id in inputs):
                return _missing("File")
            job = {
                "id": str(uuid.uuid4()),
                "object": "batch",
                "input_files": inputs,
                "endpoint": body["endpoint"],
                "model": body.get("model"),
                "agent_id": body.get("agent_id"),
                "metadata": body.get("metadata"),
                "errors": [],
                "status": "QUEUED",
                "created_at": int(time.time()),
                "total_requests": 0,
                "completed_requests": 0,
                "succeeded_requests": 0,
                "failed_requests": 0,
                "output_file": None,
                "error_file": None,
                "started_at": None,
                "completed_at": None,
            }
            account.batch_jobs[job["id"]] = job
            return _json(200, job)
        if method == "GET":
            for job in account.batch_jobs.values():
                account.settle_batch(emulator, job)
            data = list(account.batch_jobs.values())
            return _json(200, {"data": data, "object": "list", "total": len(data)})
        return None
    found = account.batch_jobs.get(rest[0])
    if found is None:
        return _missing("Batch job")
    account.settle_batch(emulator, found)
    if len(rest) == 1 and method == "GET":
        return _json(200, found)
    if len(rest) == 1 and method == "DELETE":
        del account.batch_jobs[rest[0]]
        return _json(200, {"id": rest[0], "object": "batch", "deleted": True})
    if rest[1:] == ["cancel"] and method == "POST":
        if found["status"] in ("QUEUED", "RUNNING"):
            found["status"] = "CANCELLED"
        return _json(200, found)
    return None


def _fine_tuning(emulator: Any, account: Account, request: Request, method: str, rest: list[str], body: Any) -> Any:
    if rest[:1] != ["jobs"]:
        return None
    rest = rest[1:]
    if not rest and method == "POST":
        files = [item.get("file_id") for item in body.get("training_files") or [] if isinstance(item, dict)]
        if not files or any(file_id not in account.files for file_id in files):
            return _missing("File")
        job_id = str(uuid.uuid4())
        job = {
            "id": job_id,
            "object": "job",
            "auto_start": True,
            "model": body.get("model", "open-mistral-7b"),
            "status": "SUCCESS",
            "created_at": int(time.time()),
            "modified_at": int(time.time()),
            "training_files": files,
            "validation_files": body.get("validation_files") or [],
            "hyperparameters": body.get("hyperparameters") or {"training_steps": 1},
            "fine_tuned_model": f"ft:{body.get('model', 'open-mistral-7b')}:{job_id[:8]}:emulated",
            "suffix": body.get("suffix"),
            "job_type": "completion",
            "integrations": [],
        }
        account.ft_jobs[job_id] = job
        return _json(200, job)
    if not rest and method == "GET":
        data = list(account.ft_jobs.values())
        return _json(200, {"data": data, "object": "list", "total": len(data)})
    existing = account.ft_jobs.get(rest[0]) if rest else None
    if existing is None:
        return _missing("Job")
    if len(rest) == 1 and method == "GET":
        return _json(200, existing)
    if rest[1:] in (["cancel"], ["start"]) and method == "POST":
        return _json(200, existing)
    return None


def _agents(emulator: Any, account: Account, request: Request, method: str, rest: list[str], body: Any) -> Any:
    if rest == ["completions"]:
        return None  # emulator_routes answers agents completions
    if not rest:
        if method == "POST":
            if not body.get("model") or not body.get("name"):
                return _json(422, {"object": "error", "message": "model and name", "type": "invalid_request_error"})
            agent = {
                "object": "agent",
                "id": "ag_" + uuid.uuid4().hex,
                "model": body["model"],
                "name": body["name"],
                "description": body.get("description"),
                "instructions": body.get("instructions"),
                "tools": body.get("tools") or [],
                "completion_args": body.get("completion_args") or {},
                "handoffs": body.get("handoffs"),
                "version": 0,
                "versions": [0],
                "created_at": _now_iso(),
                "updated_at": _now_iso(),
                "deployment_chat": False,
                "source": "api",
            }
            account.agents[agent["id"]] = [agent]
            return _json(200, agent)
        if method == "GET":
            return _json(200, [versions[-1] for versions in account.agents.values()])
        return None
    versions = account.agents.get(rest[0])
    if versions is None:
        return _missing("Agent")
    current = versions[-1]
    if len(rest) == 1:
        if method == "GET":
            return _json(200, current)
        if method == "DELETE":
            del account.agents[rest[0]]
            return Response(b"", status=204)
        if method == "PATCH":
            number = len(versions)
            updated = {**current, **{k: v for k, v in body.items() if k in current}, "version": number}
            updated["versions"] = list(range(number + 1))
            updated["updated_at"] = _now_iso()
            versions.append(updated)
            return _json(200, updated)
    if rest[1:] == ["versions"] and method == "GET":
        return _json(200, versions)
    if len(rest) == 3 and rest[1] == "versions" and method == "GET":
        chosen = next((v for v in versions if str(v["version"]) == rest[2]), None)
        return _json(200, chosen) if chosen else _missing("Agent version")
    if rest[1:] == ["version"] and method == "PATCH":
        return _json(200, current)
    return None


def _conversations(emulator: Any, account: Account, request: Request, method: str, rest: list[str], body: Any) -> Any:
    delay = getattr(emulator, "stream_delay", 0.0)
    if not rest:
        if method == "POST":
            if body.get("agent_id") and body["agent_id"] not in account.agents:
                return _missing("Agent")
            conversation = account.new_conversation(body)
            turn = account.answer_turn(emulator, conversation, body.get("inputs"))
            return streamed_turn(turn, delay, _fault(request)) if body.get("stream") else _json(200, turn)
        if method == "GET":
            return _json(200, [conversation_view(c) for c in account.conversations.values()])
        return None
    stored = account.conversations.get(rest[0])
    if stored is None:
        return _missing("Conversation")
    conversation = stored
    if len(rest) == 1:
        if method == "GET":
            return _json(200, conversation_view(conversation))
        if method == "DELETE":
            del account.conversations[rest[0]]
            return Response(b"", status=204)
        if method == "POST":  # append
            turn = account.answer_turn(emulator, conversation, body.get("inputs"))
            return streamed_turn(turn, delay, _fault(request)) if body.get("stream") else _json(200, turn)
    if rest[1:] == ["history"] and method == "GET":
        return _json(
            200, {"object": "conversation.history", "conversation_id": rest[0], "entries": conversation["entries"]}
        )
    if rest[1:] == ["messages"] and method == "GET":
        messages = [e for e in conversation["entries"] if e["type"].startswith("message")]
        return _json(200, {"object": "conversation.messages", "conversation_id": rest[0], "messages": messages})
    if rest[1:] == ["restart"] and method == "POST":
        entries = conversation["entries"]
        cut = next((i for i, e in enumerate(entries) if e["id"] == body.get("from_entry_id")), None)
        if cut is None:
            return _missing("Entry")
        branch = account.new_conversation({"model": conversation["model"], "agent_id": conversation.get("agent_id")})
        branch["entries"] = [dict(e) for e in entries[: cut + 1]]
        turn = account.answer_turn(emulator, branch, body.get("inputs"))
        return streamed_turn(turn, delay, _fault(request)) if body.get("stream") else _json(200, turn)
    return None


def _libraries(emulator: Any, account: Account, request: Request, method: str, rest: list[str], body: Any) -> Any:
    if not rest:
        if method == "POST":
            if not body.get("name"):
                return _json(422, {"object": "error", "message": "name", "type": "invalid_request_error"})
            library = {
                "id": str(uuid.uuid4()),
                "name": body["name"],
                "description": body.get("description"),
                "created_at": _now_iso(),
                "updated_at": _now_iso(),
                "owner_id": None,
                "owner_type": "Workspace",
                "total_size": 0,
                "nb_documents": 0,
                "chunk_size": body.get("chunk_size"),
            }
            account.libraries[library["id"]] = library
            account.documents[library["id"]] = {}
            return _json(201, library)
        if method == "GET":
            return _json(200, {"data": list(account.libraries.values())})
        return None
    kept = account.libraries.get(rest[0])
    if kept is None:
        return _missing("Library")
    library = kept
    documents = account.documents[rest[0]]
    if len(rest) == 1:
        if method == "GET":
            return _json(200, library)
        if method == "DELETE":
            del account.libraries[rest[0]]
            return _json(200, library)
        if method in ("PUT", "PATCH"):
            library.update({k: v for k, v in body.items() if k in ("name", "description")}, updated_at=_now_iso())
            return _json(200, library)
    if rest[1] != "documents":
        return None
    if len(rest) == 2:
        if method == "POST":
            upload = request.files.get("file")
            if upload is None:
                return _json(422, {"object": "error", "message": "file is required", "type": "invalid_request_error"})
            content = upload.read()
            name = upload.filename or "document"
            document = {
                "id": str(uuid.uuid4()),
                "library_id": rest[0],
                "hash": None,
                "mime_type": upload.mimetype or None,
                "extension": name.rsplit(".", 1)[-1] if "." in name else None,
                "size": len(content),
                "name": name,
                "created_at": _now_iso(),
                "process_status": "done",
                "uploaded_by_id": None,
                "uploaded_by_type": "Workspace",
                "processing_status": "Completed",
                "tokens_processing_total": len(content.split()),
                "text": content.decode("utf-8", "replace"),
            }
            documents[document["id"]] = document
            library.update(nb_documents=len(documents), total_size=library["total_size"] + len(content))
            return _json(201, _document_view(document))
        if method == "GET":
            data = [_document_view(d) for d in documents.values()]
            page = {"total_items": len(data), "total_pages": 1, "current_page": 0, "page_size": 100, "has_more": False}
            return _json(200, {"pagination": page, "data": data})
        return None
    stored_document = documents.get(rest[2])
    if stored_document is None:
        return _missing("Document")
    document = stored_document
    aspect = rest[3:]
    if not aspect:
        if method == "GET":
            return _json(200, _document_view(document))
        if method == "DELETE":
            del documents[rest[2]]
            return Response(b"", status=204)
        if method in ("PUT", "PATCH"):
            document.update({k: v for k, v in body.items() if k in ("name",)})
            return _json(200, _document_view(document))
    if aspect == ["status"] and method == "GET":
        return _json(200, {"document_id": document["id"], "process_status": "done", "processing_status": "Completed"})
    if aspect == ["text_content"] and method == "GET":
        return _json(200, {"text": document["text"]})
    if aspect in (["signed-url"], ["extracted-text-signed-url"]) and method == "GET":
        return _json(200, f"https://documents.emulator.invalid/{document['id']}?signature=emulated")
    if aspect == ["reprocess"] and method == "POST":
        return Response(b"", status=204)
    return None


def _document_view(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "text"}


def _voices(emulator: Any, account: Account, request: Request, method: str, rest: list[str], body: Any) -> Any:
    if not rest:
        if method == "POST":
            voice = {"id": str(uuid.uuid4()), "name": body.get("name") or "voice", "created_at": _now_iso()}
            account.voices[voice["id"]] = voice
            return _json(200, voice)
        if method == "GET":
            items = list(account.voices.values())
            return _json(200, {"items": items, "total": len(items), "page": 0, "page_size": 10, "total_pages": 1})
        return None
    known = account.voices.get(rest[0])
    if known is None:
        return _missing("Voice")
    voice = known
    if len(rest) == 1 and method == "GET":
        return _json(200, voice)
    if len(rest) == 1 and method == "DELETE":
        del account.voices[rest[0]]
        return _json(200, voice)
    return None


_HANDLERS = {
    "files": _files,
    "batch": _batch,
    "fine_tuning": _fine_tuning,
    "agents": _agents,
    "conversations": _conversations,
    "libraries": _libraries,
    "audio/voices": _voices,
}
