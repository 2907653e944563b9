"""The cold-start floor of the streaming function: the least a function behind the Web Adapter that reads the cache
table does. The benchmark copies this file to `.bench/stream-floor/app.py`, where `functions/stream/run.sh` starts
it as `app:app`; its request does one GetItem (table and key from the environment)."""

import os

import boto3
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

client = boto3.client("dynamodb")


def ready(request: Request) -> Response:
    return Response("ready")


def answer(request: Request) -> Response:
    key = {"pk": {"S": os.environ["BENCH_FLOOR_KEY"]}}
    item = client.get_item(TableName=os.environ["CACHE_TABLE_NAME"], Key=key).get("Item")
    return Response("data: found\n\n" if item else "data: missing\n\n", media_type="text/event-stream")


app = Starlette(routes=[Route("/ready", ready), Route("/v1/chat/completions", answer, methods=["POST"])])
