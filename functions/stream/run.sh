#!/bin/bash
# Lambda Web Adapter entry point (the function's Handler): the adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap)
# runs this script, waits for /ready, then forwards every invocation to the app as a streamed HTTP request.
# The gateway layer's packages are under /opt/python; this function's own (Starlette, uvicorn) next to it.
export PYTHONPATH="/opt/python:${LAMBDA_TASK_ROOT:-.}:${PYTHONPATH:-}"
exec python3 -m uvicorn --host 127.0.0.1 --port "${AWS_LWA_PORT:-8080}" --no-access-log --log-level warning app:app
