"""Bearer-token authentication of serving, as pure ASGI middleware in front of every route.

Tokens come from a file (a mounted Secret key): one token per line, blank lines and ``#`` comments ignored, so
a rotation can list the old and the new token until every client has moved. The file is checked for a change
at most once per ``recheck_seconds`` (inode, size, mtime: a Secret update swaps the mount's symlink) and
re-read then, so rotation needs no restart. A file that disappears or holds no token leaves the previous
tokens in force and is logged (never an open server).

``/livez``, ``/readyz`` and ``/metrics`` stay open (kubelet probes, Prometheus scrapes); the chart's
NetworkPolicy decides who reaches them. Everything else, ``POST /features`` first, needs a valid token.
"""

import hmac
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from streamguard.serving.budget import client_of_token
from streamguard.serving.fastpath import CLIENT, ASGIApp, Receive, Scope, Send, send_json

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/livez", "/readyz", "/metrics"})
"""Answered without a token (probes and scrapes; what they reveal is listed in docs/security.md)."""
CHALLENGE = [(b"www-authenticate", b'Bearer realm="streamguard-serving"')]


def parse_tokens(text: str) -> tuple[bytes, ...]:
    """The tokens of a token file (one a line; blanks and ``#`` comments ignored)."""
    lines = (line.strip() for line in text.splitlines())
    return tuple(line.encode() for line in lines if line and not line.startswith("#"))


@dataclass
class TokenFile:
    """The accepted tokens, re-read from ``path`` when it changes."""

    path: str
    recheck_seconds: float = 1.0
    _tokens: tuple[bytes, ...] = ()
    _stamp: tuple[int, int, int] | None = None
    _checked: float = float("-inf")

    def __post_init__(self) -> None:
        if not self.reload():
            raise ValueError(f"{self.path}: no bearer token in the token file")

    def reload(self) -> bool:
        """Re-read the file if it changed; ``False`` when it is unreadable or holds no token (old ones kept)."""
        self._checked = time.monotonic()
        try:
            info = Path(self.path).stat()
            stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
            if stamp == self._stamp:
                return True
            tokens = parse_tokens(Path(self.path).read_text(encoding="utf-8"))
        except OSError as error:
            logger.error("token file %s unreadable, keeping the previous tokens: %s", self.path, error)
            return False
        if not tokens:
            logger.error("token file %s holds no token, keeping the previous tokens", self.path)
            return False
        self._tokens, self._stamp = tokens, stamp
        return True

    def accepts(self, presented: bytes) -> bool:
        if time.monotonic() - self._checked >= self.recheck_seconds:
            self.reload()
        # Compare against every token (no early exit): timing does not tell which one matched.
        return bool(sum(hmac.compare_digest(presented, token) for token in self._tokens))


def bearer(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" and token.strip() else None
    return None


class Authenticate:
    """401 unless the request carries ``Authorization: Bearer <a token of the file>``; open paths pass."""

    def __init__(self, app: ASGIApp, tokens: TokenFile) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        presented = bearer(scope)
        if presented is None or not self.tokens.accepts(presented):
            detail = "missing bearer token" if presented is None else "invalid bearer token"
            await send_json(send, 401, orjson.dumps({"detail": detail}), CHALLENGE)
            return
        scope[CLIENT] = client_of_token(presented)  # the unit of fairness (serving/budget.py)
        await self.app(scope, receive, send)
