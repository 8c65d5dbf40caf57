"""``POST /features`` as a pure ASGI middleware: the lookup path skips FastAPI's routing, dependency
solving and exception middlewares, which cost more CPU than the lookup itself. The service comes from
the app state the lifespan created; every other path goes through the FastAPI app as usual. The
operation is still published in the OpenAPI document (see :mod:`streamguard.serving.app`).

Admission, in order, each refusal answered before a byte of the body is read: the worker's lookups in progress
(429), the declared body size (413), the client's rate (429 while it is in debt), the client's body bytes in
progress (429; :mod:`streamguard.serving.budget`).
The client's values in progress are checked once the body is parsed (:meth:`FeatureService.features`)."""

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from streamguard.serving.budget import client_of_address

PATH = "/features"
CLIENT = "streamguard.client"
"""The scope key under which authentication leaves the client's identity (absent without authentication)."""

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
            detail = f"over {settings.max_concurrent_lookups} lookups in progress; retry later"
            await self._answer(service, send, started, 429, orjson.dumps({"detail": detail}), "worker")
            return
        limit: int = settings.max_body_bytes
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            # Refused on the header: not a byte of the body is read.
            too_large = orjson.dumps({"detail": f"request body over {limit} bytes"})
            await self._answer(service, send, started, 413, too_large)
            return
        client = client_of(scope)
        wait = service.values_rate.retry_after(client, time.monotonic())
        if wait:
            detail = f"this client looked up more than {service.values_rate.rate:g} values a second; retry later"
            await self._answer(service, send, started, 429, orjson.dumps({"detail": detail}), "client_rate", wait)
            return
        cost = limit if declared is None else declared
        budget = service.bytes_in_flight
        if not budget.acquire(client, cost):
            detail = (
                f"this client has {budget.held(client)} body bytes of lookups in progress (limit "
                f"{budget.limit}); retry later"
            )
            await self._answer(service, send, started, 429, orjson.dumps({"detail": detail}), "client_bytes")
            return
        self.in_flight += 1
        try:
            status, body = await self._read_and_answer(service, client, receive, limit)
        finally:
            self.in_flight -= 1
            budget.release(client, cost)
        if status:  # a 429 here: the client's values in progress (refused once the body was parsed)
            await self._answer(service, send, started, status, body, "client_values" if status == 429 else None)

    @staticmethod
    async def _answer(
        service: Any,
        send: Send,
        started: float,
        status: int,
        body: bytes,
        refused: str | None = None,
        retry_after: int = 0,
    ) -> None:
        """Send the answer: a 413 closes the connection (its body may be unread); a 429 (``refused``: which
        limit) says when to retry (``retry_after`` seconds, at least the configured Retry-After)."""
        extra = None
        if status == 413:
            extra = [(b"connection", b"close")]
        elif status == 429:
            retry = max(retry_after, service.settings.retry_after_seconds)
            extra = [(b"retry-after", str(retry).encode())]
            service.metrics.lookups_refused.labels(refused).inc()
        await send_json(send, status, body, extra)
        service.metrics.observe(PATH, status, time.perf_counter() - started)

    @staticmethod
    async def _read_and_answer(service: Any, client: str, receive: Receive, limit: int) -> tuple[int, bytes]:
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
                return 413, orjson.dumps({"detail": f"request body over {limit} bytes"})
            chunks.append(chunk)
            if not message.get("more_body", False):
                result: tuple[int, bytes] = await service.features(b"".join(chunks), client)
                return result


def client_of(scope: Scope) -> str:
    """Who sent the request: the identity authentication left, else the peer's address."""
    client = scope.get(CLIENT)
    if isinstance(client, str):
        return client
    peer = scope.get("client")
    return client_of_address(peer[0] if peer else None)


async def send_json(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [*_HEADERS, (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
