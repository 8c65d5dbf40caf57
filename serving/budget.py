"""Fairness between clients of one worker: how much lookup work each client may hold in progress.

A worker answers lookups on one event loop, so a client with many large lookups in progress takes the CPU
from everyone else. Each client (its bearer token, or its address when serving runs without authentication)
has a budget of work in progress, counted in a unit the caller chooses (body bytes before the body is read,
values, i.e. entity rows x features, once it is parsed). A request that would take the client over its budget
is refused at once (429), unless the client has nothing in progress: a single request within the other limits
is always admitted, so no valid request is refused forever.

Work in progress bounds how much of the worker a client holds at once, not its share over time:
:class:`ClientRate` adds a rate per client (values a second), refusing a client that used more than its rate
before the worker reads its next body.
"""

import hashlib
import math
from dataclasses import dataclass, field

TRACKED_CLIENTS = 1024
"""Past this many clients with a bucket, the buckets that refilled completely are dropped (they hold nothing)."""


def client_of_token(token: bytes) -> str:
    """The identity of a bearer token's holder: a digest, so the token itself never shows in metrics or logs."""
    return "token:" + hashlib.sha256(token).hexdigest()[:16]


def client_of_address(host: str | None) -> str:
    """The identity of an unauthenticated client: its address (every client behind one proxy shares it)."""
    return f"address:{host or 'unknown'}"


@dataclass
class ClientBudget:
    """Work in progress per client, at most ``limit`` units each (one request at a time may exceed it)."""

    limit: int
    _held: dict[str, int] = field(default_factory=dict)

    def acquire(self, client: str, cost: int) -> bool:
        """Take ``cost`` units for ``client``; ``False`` (nothing taken) when that would exceed its budget."""
        held = self._held.get(client, 0)
        if held and held + cost > self.limit:
            return False
        self._held[client] = held + cost
        return True

    def release(self, client: str, cost: int) -> None:
        """Give back what :meth:`acquire` took (a client holding nothing is forgotten)."""
        held = self._held.get(client, 0) - cost
        if held < 0:
            raise ValueError(f"{client} released {cost} units but held {held + cost}")
        if held:
            self._held[client] = held
        else:
            del self._held[client]

    def held(self, client: str) -> int:
        return self._held.get(client, 0)

    @property
    def clients(self) -> int:
        """Clients holding work right now (the map never outgrows the requests in progress)."""
        return len(self._held)


@dataclass
class ClientRate:
    """A token bucket per client: ``rate`` units a second, holding at most one second's worth. A client may
    send while its bucket is not in debt, and each lookup is then charged its whole cost, into debt if need be:
    a lookup larger than a second's worth is still served, and its client waits the debt off. ``rate`` 0: off."""

    rate: float
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per client: its level and when it was last computed."""

    def _level(self, client: str, now: float) -> float:
        level, at = self._buckets.get(client, (self.rate, now))
        return min(self.rate, level + (now - at) * self.rate)

    def wait(self, client: str, now: float) -> float:
        """Seconds until ``client`` may send again (0: now)."""
        if self.rate <= 0:
            return 0.0
        level = self._level(client, now)
        return 0.0 if level >= 0 else -level / self.rate

    def retry_after(self, client: str, now: float) -> int:
        """:meth:`wait` in whole seconds, rounded up."""
        return math.ceil(self.wait(client, now))

    def charge(self, client: str, cost: float, now: float) -> None:
        if self.rate <= 0:
            return
        self._buckets[client] = (self._level(client, now) - cost, now)
        if len(self._buckets) > TRACKED_CLIENTS:
            for other in [c for c in self._buckets if self._level(c, now) >= self.rate]:
                del self._buckets[other]

    @property
    def clients(self) -> int:
        return len(self._buckets)
