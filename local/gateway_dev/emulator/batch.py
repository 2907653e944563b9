"""`/v1/batch/jobs`: create, list, get, delete, cancel. A job completes `Account.batch_seconds` after it was
created (read on the next GET), with an output file of one chat answer per input line and the job's usage in
its `outputs`."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from werkzeug.wrappers import Response

from gateway_dev.emulator import chat
from gateway_dev.emulator.account import Account, account_route, listing
from gateway_dev.emulator.wire import Call, json_response, not_found


def _jobs(emulator: Any, call: Call, rest: list[str]) -> Response | None:
    account: Account = emulator.account
    method, body = call.method, call.body
    if not rest:
        if method == "POST":
            inputs = body.get("input_files")
            if not isinstance(inputs, list) or not body.get("endpoint"):
                problem = {"object": "error", "message": "input_files and endpoint", "type": "invalid_request_error"}
                return json_response(422, problem)
            if any(file_id not in account.files for file_id in inputs):
                return not_found("File")
            job = _new_job(inputs, body)
            account.batch_jobs[job["id"]] = job
            return json_response(200, job)
        if method == "GET":
            for job in account.batch_jobs.values():
                settle(emulator, job)
            return json_response(200, listing(list(account.batch_jobs.values())))
        return None
    found = account.batch_jobs.get(rest[0])
    if found is None:
        return not_found("Batch job")
    settle(emulator, found)
    if len(rest) == 1 and method == "GET":
        return json_response(200, found)
    if len(rest) == 1 and method == "DELETE":
        del account.batch_jobs[rest[0]]
        return json_response(200, {"id": rest[0], "object": "batch", "deleted": True})
    if rest[1:] == ["cancel"] and method == "POST":
        if found["status"] in ("QUEUED", "RUNNING"):
            found["status"] = "CANCELLED"
        return json_response(200, found)
    return None


def _new_job(inputs: list[Any], body: dict[str, Any]) -> dict[str, Any]:
    return {
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


def settle(emulator: Any, job: dict[str, Any]) -> None:
    """QUEUED until batch_seconds have passed, then SUCCESS with an output file (or CANCELLED stays)."""
    account: Account = emulator.account
    if job["status"] != "QUEUED" or time.time() - job["created_at"] < account.batch_seconds:
        return
    lines, errors, usage = [], [], {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for file_id in job["input_files"]:
        _, content = account.files.get(file_id, ({}, b""))
        for raw in content.splitlines():
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                body = {"model": job.get("model") or "mistral-small-latest", **line["body"]}
                answer = json.loads(chat.answer(emulator, body, raw).get_data())
                for key in usage:
                    usage[key] += answer["usage"][key]
                lines.append({"custom_id": line.get("custom_id"), "response": {"status_code": 200, "body": answer}})
            except (ValueError, KeyError, TypeError):
                errors.append({"message": "invalid line", "count": 1})
    output = "".join(json.dumps(line) + "\n" for line in lines).encode()
    job["output_file"] = account.add_file(f"{job['id']}.jsonl", output, "batch", source="mistral")["id"]
    if errors:
        error_lines = "".join(json.dumps(error) + "\n" for error in errors).encode()
        job["error_file"] = account.add_file(f"{job['id']}-errors.jsonl", error_lines, "batch", "mistral")["id"]
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


dispatch = account_route("batch/jobs", _jobs)
