"""An open-loop HTTP/1.1 load generator: requests leave at a fixed rate whatever the server does.

Request ``i`` is due at ``start + i / rate``. When it is due it takes an idle keep-alive connection, or
opens a new one (up to ``--connections``), or waits in a queue for one: a slow server therefore makes
later requests wait, and that wait is part of their latency (no coordinated omission). Latency runs
from the moment the request was dispatched (at most one event-loop tick after it was due; the
dispatch lag is reported separately) to the last byte of the response.

Every request sent counts in the percentiles. A miss (an answer other than 200, a lost or refused
connection, or no answer within ``--timeout`` seconds) ranks as +inf: a percentile that falls among the
misses is reported as ``"miss"``, never as the latency of the requests that succeeded.

Run as a separate process: ``python loadgen.py --url http://127.0.0.1:8080/features --bodies b.jsonl
--rate 1000 --duration 15`` prints one JSON object with the figures.
"""

import argparse
import asyncio
import contextlib
import json
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import uvloop


@dataclass
class Results:
    timeout: float
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, generator: "Generator") -> None:
        self.generator = generator
        self.transport: Any = None
        self.buffer = bytearray()
        self.started = 0.0
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, request: bytes, dispatched: float) -> None:
        assert self.transport is not None
        self.busy = True
        self.started = dispatched
        self.buffer.clear()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if len(self.buffer) < end + 4 + length:
            return
        done = time.perf_counter()
        status = int(head[9:12])
        self.busy = False
        self.generator.finished(self, status, done - self.started)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.generator.lost(self)


class Generator:
    def __init__(
        self, url: str, bodies: list[bytes], connections: int, timeout: float, headers: tuple[str, ...] = ()
    ) -> None:
        parsed = urlparse(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        extra = "".join(f"{header}\r\n" for header in headers)
        self.requests = [
            (
                f"POST {parsed.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{extra}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
            for body in bodies
        ]
        self.max_connections = connections
        self.idle: list[Connection] = []
        self.all: set[Connection] = set()
        self.opening = 0
        self.queue: deque[tuple[bytes, float]] = deque()
        self.results = Results(timeout)
        self.outstanding = 0
        self.opens: set[asyncio.Task[None]] = set()
        self.drained = asyncio.Event()
        self.closing = False

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self.opening += 1
        try:
            _, connection = await loop.create_connection(lambda: Connection(self), self.host, self.port)
        except OSError:
            self.results.error("connect")
            if self.queue:
                self.queue.popleft()
                self._done()
            return
        finally:
            self.opening -= 1
        self.all.add(connection)
        self._next(connection)

    def _next(self, connection: Connection) -> None:
        if self.queue:
            request, dispatched = self.queue.popleft()
            connection.send(request, dispatched)
        else:
            self.idle.append(connection)

    def dispatch(self, request: bytes, dispatched: float) -> None:
        self.outstanding += 1
        if self.idle:
            self.idle.pop().send(request, dispatched)
            return
        self.queue.append((request, dispatched))
        if len(self.all) + self.opening < self.max_connections:
            task = asyncio.ensure_future(self._open())
            self.opens.add(task)
            task.add_done_callback(self.opens.discard)

    def _done(self) -> None:
        self.outstanding -= 1
        if self.outstanding == 0:
            self.drained.set()

    def finished(self, connection: Connection, status: int, seconds: float) -> None:
        self._done()
        if seconds > self.results.timeout:
            self.results.error("timeout")
        elif status == 200:
            self.results.latencies.append(seconds)
        else:
            self.results.error(f"http_{status}")
        self._next(connection)

    def lost(self, connection: Connection) -> None:
        self.all.discard(connection)
        if connection in self.idle:
            self.idle.remove(connection)
        if connection.busy and not self.closing:  # closing: its request already counts as a timeout
            self._done()
            self.results.error("connection_lost")

    async def run(self, rate: float, duration: float) -> dict[str, Any]:
        total = int(rate * duration)
        start = time.perf_counter() + 0.05
        sent = 0
        while sent < total:
            now = time.perf_counter()
            while sent < total and start + sent / rate <= now:
                self.results.lags.append(now - (start + sent / rate))
                self.dispatch(self.requests[sent % len(self.requests)], now)
                sent += 1
            if sent < total:
                await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
        elapsed = time.perf_counter() - start
        if self.outstanding > 0:
            self.drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), self.results.timeout)
        if self.outstanding > 0:
            self.results.errors["timeout"] = self.results.errors.get("timeout", 0) + self.outstanding
        self.closing = True
        for connection in list(self.all):
            if connection.transport is not None:
                connection.transport.close()
        return summarize(rate, total, elapsed, self.results, len(self.all))


def percentile(sorted_values: list[float], q: float, misses: int = 0) -> float | None:
    """The ``q``-th percentile of ``sorted_values`` plus ``misses`` values of +inf; None if it is one of those."""
    total = len(sorted_values) + misses
    if not total:
        return None
    index = min(total - 1, max(0, round(q / 100 * total) - 1))
    return sorted_values[index] if index < len(sorted_values) else None


def summarize(rate: float, total: int, elapsed: float, results: Results, connections: int) -> dict[str, Any]:
    latencies = sorted(results.latencies)
    lags = sorted(results.lags)
    misses = total - len(latencies)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    def latency(q: float) -> float | str:
        value = percentile(latencies, q, misses)
        return "miss" if value is None else round(value * 1000, 3)

    return {
        "target_rps": rate,
        "sent": total,
        "ok": len(latencies),
        "errors": sum(results.errors.values()),
        "misses": misses,
        "timeout_s": results.timeout,
        "error_kinds": results.errors,
        "achieved_rps": round(total / elapsed, 1) if elapsed else None,
        "connections": connections,
        "latency_ms": {
            "p50": latency(50),
            "p90": latency(90),
            "p99": latency(99),
            "p99.9": latency(99.9),
            "max": "miss" if misses else ms(latencies[-1] if latencies else None),
        },
        "latency_ms_note": "over every request sent; misses (errors, timeouts) rank as +inf and read 'miss'",
        "dispatch_lag_ms": {"p50": ms(percentile(lags, 50)), "p99": ms(percentile(lags, 99))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", required=True, type=Path, help="One JSON request body per line.")
    parser.add_argument("--rate", required=True, type=float)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=2.0, help="Seconds after which a request is a miss.")
    parser.add_argument("--header", action="append", default=[], help="Extra request header ('Name: value').")
    args = parser.parse_args()
    bodies = [line.encode() for line in args.bodies.read_text().splitlines() if line.strip()]
    generator = Generator(args.url, bodies, args.connections, args.timeout, tuple(args.header))
    print(json.dumps(uvloop.run(generator.run(args.rate, args.duration))))


if __name__ == "__main__":
    main()
