"""Request bounds enforced before a route runs (docs/operations.md, "Limits"): a declared or
streamed body larger than the cap (413), a malformed Content-Length (400), a body that stops
arriving or takes too long (408, connection closed). A pure ASGI middleware, so nothing is buffered
and the route never sees a request that broke a bound."""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _BodyRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class RequestBounds:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, idle_timeout_s: float, total_timeout_s: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.idle_timeout_s = idle_timeout_s
        self.total_timeout_s = total_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _answer(send, 400, "invalid Content-Length header")
                return
            if int(declared) > self.max_body_bytes:
                await _answer(send, 413, f"request body larger than {self.max_body_bytes} bytes")
                return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout_s
        state = {"received": 0, "done": False, "refused": None, "started": False}

        async def bounded_receive() -> Message:
            if state["refused"] is not None:
                return {"type": "http.disconnect"}
            if state["done"]:  # the body is in: later receives wait for a disconnect, unbounded
                return await receive()
            wait_s = min(self.idle_timeout_s, deadline - loop.time())
            try:
                message = await asyncio.wait_for(receive(), max(wait_s, 0.001))
            except asyncio.TimeoutError:
                state["refused"] = _BodyRefused(408, "the request body did not arrive in time "
                                                     f"(idle {self.idle_timeout_s:g} s, whole {self.total_timeout_s:g} s)")
                raise state["refused"] from None
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_body_bytes:
                    state["refused"] = _BodyRefused(413, f"request body larger than {self.max_body_bytes} bytes")
                    raise state["refused"]
                state["done"] = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            if state["refused"] is not None:
                return  # the route's answer to a refused body is replaced by ours
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except _BodyRefused:
            pass
        except Exception:
            if state["refused"] is None:
                raise
        refused = state["refused"]
        if refused is not None and not state["started"]:
            await _answer(send, refused.status, refused.detail, close=True)


async def _answer(send: Send, status: int, detail: str, *, close: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
