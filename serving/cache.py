"""A small in-process cache of decoded Redis reads with a bounded staleness and a bounded size.

An entry is served for at most ``staleness_seconds`` after it was read from Redis, so a value can be
that much older than what Redis holds; ``staleness_seconds == 0`` turns the cache off. The size is
bounded twice: past ``max_entries`` entries or ``max_bytes`` (the callers' estimate of each entry: its key
and the bytes Redis sent) the oldest reads are dropped first, so keys a client chooses cannot grow it.
"""

from collections.abc import Hashable


class TTLCache:
    __slots__ = ("_bytes", "_entries", "max_bytes", "max_entries", "staleness_seconds")

    def __init__(self, staleness_seconds: float, max_entries: int = 100_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        if staleness_seconds < 0 or max_entries < 1 or max_bytes < 1:
            raise ValueError("cache staleness must be >= 0 seconds, max entries and max bytes >= 1")
        self.staleness_seconds = staleness_seconds
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: dict[Hashable, tuple[float, object, int]] = {}
        self._bytes = 0

    @property
    def enabled(self) -> bool:
        return self.staleness_seconds > 0

    @property
    def size_bytes(self) -> int:
        """The estimated bytes of the entries held."""
        return self._bytes

    def get(self, key: Hashable, now: float) -> tuple[bool, object]:
        """``(True, value)`` for a live entry, ``(False, None)`` otherwise."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        if entry[0] <= now:
            self._drop(key)
            return False, None
        return True, entry[1]

    def put(self, key: Hashable, value: object, now: float, size: int = 1) -> None:
        """Hold ``value`` (``size``: its estimated bytes; an entry larger than the whole cache is not held)."""
        self._drop(key)
        if size > self.max_bytes:
            return
        entries = self._entries
        entries[key] = (now + self.staleness_seconds, value, size)
        self._bytes += size
        while len(entries) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(entries)))

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[2]

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)
