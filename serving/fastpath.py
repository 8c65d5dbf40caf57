"""``POST /features`` as a pure ASGI middleware: the lookup path skips FastAPI's routing, dependency
solving and exception middlewares, which cost more CPU than the lookup itself. The service comes from
the app state the lifespan created; every other path goes through the FastAPI app as usual. The
operation is still published in the OpenAPI document (see :mod:`streamguard.serving.app`)."""

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

PATH = "/features"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
_HEADERS = [(b"content-type", b"application/json")]


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length`` (``None`` when absent or not a number: the read is capped instead)."""
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class FeaturesFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.in_flight = 0
        """Lookups of this worker being read or answered (bounded by ``max_concurrent_lookups``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await send_json(send, 405, orjson.dumps({"detail": "Method Not Allowed"}), [(b"allow", b"POST")])
            return
        started = time.perf_counter()
        service = scope["app"].state.service
        settings = service.settings
        if self.in_flight >= settings.max_concurrent_lookups:
            retry = str(settings.retry_after_seconds).encode()
            busy = orjson.dumps({"detail": f"over {settings.max_concurrent_lookups} lookups in progress; retry later"})
            await send_json(send, 429, busy, [(b"retry-after", retry)])
            service.metrics.observe(PATH, 429, time.perf_counter() - started)
            return
        self.in_flight += 1
        try:
            await self._lookup(service, scope, receive, send, started)
        finally:
            self.in_flight -= 1

    async def _lookup(self, service: Any, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        limit: int = service.settings.max_body_bytes
        too_large = 413, orjson.dumps({"detail": f"request body over {limit} bytes"})
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            status, body = too_large  # refused on the header: not a byte of the body is read
        else:
            status, body = await self._read_and_answer(service, receive, limit, too_large)
            if status == 0:
                return
        await send_json(send, status, body, [(b"connection", b"close")] if status == 413 else None)
        service.metrics.observe(PATH, status, time.perf_counter() - started)

    @staticmethod
    async def _read_and_answer(
        service: Any, receive: Receive, limit: int, too_large: tuple[int, bytes]
    ) -> tuple[int, bytes]:
        """Read the body (never more than ``limit`` bytes are kept) and look it up; status 0: client gone."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return 0, b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                result: tuple[int, bytes] = await service.features(b"".join(chunks))
                return result


async def send_json(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [*_HEADERS, (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
