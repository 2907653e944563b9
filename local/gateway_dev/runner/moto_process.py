"""moto's server in a process of its own, as `make serve`, `make moto` and the benchmark run it: `MotoProcess`
starts it (the parent's side), `main` is the child.

In the cloud a DynamoDB call is a wait on another machine; locally it is moto's Python (werkzeug, Flask, its
expression parser: ~4 ms for a GetItem, ~7 ms for a conditional UpdateItem here). In the runner's own process
that work took the GIL from the functions, so concurrent requests queued behind each other's AWS calls; in
its own process it runs beside them, on another core.

The parent reads one line, `ready <url>`, and stops the server by closing this process's stdin (so a parent
that dies takes it along: no orphaned server holding the port).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
from typing import Any


class MotoProcess:
    """moto's server in a process of its own, started at once; `url()` waits for it,
    so the caller can do other work while the child imports moto."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        import subprocess

        self._child = subprocess.Popen(
            [sys.executable, "-m", "gateway_dev.runner.moto_process", "--host", host, "--port", str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self._url: str | None = None

    def url(self, timeout_s: float = 120.0) -> str:
        """The server's URL once it listens; a child that fails, or says nothing for `timeout_s`, is stopped."""
        if self._url is None:
            import select

            assert self._child.stdout is not None
            said, _, _ = select.select([self._child.stdout], [], [], timeout_s)
            ready = self._child.stdout.readline().strip() if said else ""
            if not ready.startswith("ready "):
                self.stop()
                raise RuntimeError(f"moto's server did not start (exit {self._child.returncode}); its errors are above")
            self._url = ready.removeprefix("ready ")
        return self._url

    def stop(self) -> None:
        import subprocess

        if self._child.stdin is not None:
            with contextlib.suppress(OSError):
                self._child.stdin.close()  # the child's signal to stop
        try:
            self._child.wait(10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()


def start_moto(host: str = "127.0.0.1", port: int = 0) -> tuple[str, Any]:
    """moto's server in a process of its own, once it listens: its URL, and how to stop it."""
    moto = MotoProcess(host, port)
    return moto.url(), moto.stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    try:  # moto's server would wait forever for a port it failed to bind: say so and stop instead
        with socket.create_server((args.host, args.port)):
            pass
    except OSError as error:
        print(f"moto's server cannot listen on {args.host}:{args.port} ({error.strerror})", file=sys.stderr)
        return 1
    from moto.server import ThreadedMotoServer

    from gateway_dev.cloud.resources import make_moto_writes_atomic

    make_moto_writes_atomic()
    # werkzeug logs an access line per AWS call at INFO (a dozen per request): the functions log their own.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"ready http://{host}:{port}", flush=True)
    with open(os.devnull, "w") as nowhere, contextlib.redirect_stdout(nowhere):  # nobody reads the pipe now
        try:
            sys.stdin.read()  # until the parent closes it, or dies
        except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the parent stops us
            sys.stdin.read()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
