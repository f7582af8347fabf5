"""The client's mistakes, as one exception type the API answers with a 4xx.

Service functions raise :class:`InvalidInput` (or a subclass) for input a client sent that cannot
be served, with a message that says what to change. Any other exception leaving a route, a bare
``ValueError`` from an algorithm included, is a bug of ours: a 500 and a log line with its
traceback, never dressed up as the client's fault.
"""

from __future__ import annotations


class InvalidInput(ValueError):
    """Input the service refuses; ``status`` is the HTTP answer (422 unless a subclass says)."""

    status: int = 422

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
