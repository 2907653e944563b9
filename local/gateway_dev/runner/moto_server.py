"""`make moto`: a moto server holding the template's table and secret, for `sam local start-api` users.

Run it, then start SAM with the env-vars file it writes (.aws-sam/local-env.json), which points the functions
at this server and at the Mistral emulator (or at Mistral when MISTRAL_API_KEY is set).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from gateway_dev.runner.moto_process import start_moto
from gateway_dev.runner.serve import start_local

# Docker containers reach the host through this name (Docker Desktop; on Linux add --add-host).
CONTAINER_HOST = "host.docker.internal"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("MOTO_PORT", "5000")))
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--env-file", default=".aws-sam/local-env.json")
    args = parser.parse_args(argv)
    moto_url, stop_moto = start_moto(args.host, args.port)
    local_url = f"http://127.0.0.1:{args.port}"
    stack = start_local(
        mistral_api_key=os.environ.get("MISTRAL_API_KEY"),
        server_url=os.environ.get("MISTRAL_SERVER_URL"),
        api_key=None,
        moto_url=local_url,
        emulator_host=args.host,  # containers must reach the emulator too
    )
    upstream = stack.upstream_url.replace("127.0.0.1", CONTAINER_HOST).replace("0.0.0.0", CONTAINER_HOST)
    variables = {
        "AWS_ENDPOINT_URL": f"http://{CONTAINER_HOST}:{args.port}",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "MISTRAL_SERVER_URL": upstream,
    }
    env = {logical_id: variables for logical_id in stack.template.resources_of_type("AWS::Serverless::Function")}
    path = Path(args.env_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(env, indent=2) + "\n")
    print(f"moto server on {moto_url} (table and secret from template.yaml); upstream {stack.upstream_url}")
    print(f"now: sam build && sam local start-api --env-vars {path} --add-host host.docker.internal:host-gateway")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        stop_moto()
    return 0


if __name__ == "__main__":
    sys.exit(main())
