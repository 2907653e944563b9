"""`/v1/fine_tuning/jobs`: a job is created finished (SUCCESS), with a fine-tuned model that /v1/models lists."""

from __future__ import annotations

import time
import uuid
from typing import Any

from werkzeug.wrappers import Response

from gateway_dev.emulator.account import Account, account_route, listing
from gateway_dev.emulator.wire import Call, json_response, not_found


def _jobs(emulator: Any, call: Call, rest: list[str]) -> Response | None:
    account: Account = emulator.account
    method, body = call.method, call.body
    if not rest and method == "POST":
        files = [item.get("file_id") for item in body.get("training_files") or [] if isinstance(item, dict)]
        if not files or any(file_id not in account.files for file_id in files):
            return not_found("File")
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
        return json_response(200, job)
    if not rest and method == "GET":
        return json_response(200, listing(list(account.ft_jobs.values())))
    existing = account.ft_jobs.get(rest[0]) if rest else None
    if existing is None:
        return not_found("Job")
    if len(rest) == 1 and method == "GET":
        return json_response(200, existing)
    if rest[1:] in (["cancel"], ["start"]) and method == "POST":
        return json_response(200, existing)
    return None


dispatch = account_route("fine_tuning/jobs", _jobs)
