"""A small in-process cache of decoded Redis reads with a bounded staleness.

An entry is served for at most ``staleness_seconds`` after it was read from Redis, so a value can be
that much older than what Redis holds; ``staleness_seconds == 0`` turns the cache off. The size is
bounded: past ``max_entries`` the oldest reads are dropped first.
"""

from collections.abc import Hashable


class TTLCache:
    __slots__ = ("_entries", "max_entries", "staleness_seconds")

    def __init__(self, staleness_seconds: float, max_entries: int = 100_000) -> None:
        if staleness_seconds < 0 or max_entries < 1:
            raise ValueError("cache staleness must be >= 0 seconds and max entries >= 1")
        self.staleness_seconds = staleness_seconds
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, object]] = {}

    @property
    def enabled(self) -> bool:
        return self.staleness_seconds > 0

    def get(self, key: Hashable, now: float) -> tuple[bool, object]:
        """``(True, value)`` for a live entry, ``(False, None)`` otherwise."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        if entry[0] <= now:
            del self._entries[key]
            return False, None
        return True, entry[1]

    def put(self, key: Hashable, value: object, now: float) -> None:
        entries = self._entries
        entries.pop(key, None)
        entries[key] = (now + self.staleness_seconds, value)
        if len(entries) > self.max_entries:
            del entries[next(iter(entries))]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
