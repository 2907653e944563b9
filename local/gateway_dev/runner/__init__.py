"""The docker-free local runner: `make serve` (serve.py) runs the template's Lambda functions in this process
(functions.py loads and invokes them), behind a WSGI bridge (bridge.py) or an ASGI server that streams
(asgi.py), checking caller keys as the cloud does (caller_keys.py). Also one event through a handler
(invoke.py), the sample events (events.py) and a moto server for `sam local` (moto_server.py)."""
