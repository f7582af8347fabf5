"""What the service answers when it is at one of its limits (docs/operations.md, "Limits").

A full job queue or no free decode slot is not the client's fault and not a crash: the API answers
the exception's ``status`` (429 or 503) with a ``Retry-After`` header, and nothing is stored.
"""

from __future__ import annotations


class ServiceBusy(RuntimeError):
    """The service refuses work for now; retry after ``retry_after_s`` seconds."""

    status: int = 503

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, int(retry_after_s))
