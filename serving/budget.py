"""Fairness between clients of one worker: how much lookup work each client may hold in progress.

A worker answers lookups on one event loop, so a client with many large lookups in progress takes the CPU
from everyone else. Each client (its bearer token, or its address when serving runs without authentication)
has a budget of work in progress, counted in a unit the caller chooses (body bytes before the body is read,
values, i.e. entity rows x features, once it is parsed). A request that would take the client over its budget
is refused at once (429), unless the client has nothing in progress: a single request within the other limits
is always admitted, so no valid request is refused forever.
"""

import hashlib
from dataclasses import dataclass, field


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
