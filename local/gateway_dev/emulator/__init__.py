"""A deterministic Mistral API on 127.0.0.1, the fake upstream of the tests and of `make serve`.

server.py is the HTTP server (scripted faults, recorded requests, routing); each other module answers one
family of Mistral's routes in its wire format, and sse.py writes every stream."""
