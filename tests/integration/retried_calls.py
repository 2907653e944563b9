"""A DynamoDB client whose chosen writes land twice: the first attempt lands but its answer is lost (a read timeout
under load), and botocore sends the same call again, as its retries do. Conditional writes must still know
that the write that refused them was their own."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError


class SentTwice:
    def __init__(self, client: Any, operation: str, matches: Callable[[dict[str, Any]], bool]) -> None:
        self._client = client
        self._operation = operation
        self._matches = matches
        self.repeated = 0  # how many calls were sent twice

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name != self._operation:
            return method

        def twice(**call: Any) -> Any:
            if self._matches(call):
                self.repeated += 1
                with contextlib.suppress(ClientError):  # its answer never came back, whatever it was
                    method(**call)
            return method(**call)

        return twice
