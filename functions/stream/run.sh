#!/bin/bash
# Lambda Web Adapter entry point (the function's Handler): the adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap)
# runs this script, waits for /ready, then forwards every invocation to the app as a streamed HTTP request.
# As in the adapter's own Python examples: the runtime's directory (boto3), the function's packages (Starlette,
# uvicorn, in /var/task, the working directory) and the gateway layer (/opt/python) are on the path.
export PYTHONPATH="${LAMBDA_RUNTIME_DIR:-}:${LAMBDA_TASK_ROOT:-.}:${PYTHONPATH:-}:/opt/python"
exec python -m uvicorn --host 127.0.0.1 --port "${AWS_LWA_PORT:-8080}" --no-access-log --log-level warning app:app
