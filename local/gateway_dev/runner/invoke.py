"""`make invoke EVENT=events/chat.json`: one API Gateway event through its function, in-process, no Docker.

The same event file works with `sam local invoke ApiFunction -e events/chat.json` for Docker users. AWS is a moto
server (its own process) with the template's resources; the upstream is chosen as for `make serve`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from gateway_dev.runner.serve import start_local


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Invoke a function with an API Gateway event file.")
    parser.add_argument("event", help="path to an API Gateway REST proxy event (events/*.json)")
    parser.add_argument("--function", default=None, help="logical id (default: the one whose route matches)")
    parser.add_argument("--times", type=int, default=1, help="invoke this many times (2 shows a cache hit)")
    args = parser.parse_args(argv)
    with open(args.event) as file:
        event = json.load(file)

    stack = start_local(
        mistral_api_key=os.environ.get("MISTRAL_API_KEY"),
        server_url=os.environ.get("MISTRAL_SERVER_URL"),
        api_key=None,
        moto_url=os.environ.get("AWS_ENDPOINT_URL"),
    )
    try:
        from gateway_dev.runner.functions import load_function

        logical_id = args.function or next(
            (r.function for r in stack.template.routes() if r.matches(event["httpMethod"], event["path"])), None
        )
        if logical_id is None:
            print(f"no function serves {event['httpMethod']} {event['path']}", file=sys.stderr)
            return 2
        function = load_function(stack.template, logical_id)
        for _ in range(max(1, args.times)):
            result = function.invoke(event)
            print(json.dumps(result, indent=2))
        function.settle()  # the store after the last response lands before moto stops
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
