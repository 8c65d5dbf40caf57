"""``POST /features`` as a pure ASGI middleware: the lookup path skips FastAPI's routing, dependency
solving and exception middlewares, which cost more CPU than the lookup itself. The service comes from
the app state the lifespan created; every other path goes through the FastAPI app as usual. The
operation is still published in the OpenAPI document (see :mod:`streamguard.serving.app`)."""

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

PATH = "/features"
MAX_BODY_BYTES = 8 * 1024 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
_HEADERS = [(b"content-type", b"application/json")]


class FeaturesFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _send(send, 405, orjson.dumps({"detail": "Method Not Allowed"}), [(b"allow", b"POST")])
            return
        started = time.perf_counter()
        service = scope["app"].state.service
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                status, body = 413, orjson.dumps({"detail": f"request body over {MAX_BODY_BYTES} bytes"})
                break
            chunks.append(chunk)
            if not message.get("more_body", False):
                status, body = await service.features(b"".join(chunks))
                break
        await _send(send, status, body)
        service.metrics.observe(PATH, status, time.perf_counter() - started)


async def _send(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [*_HEADERS, (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
