"""Reading windows from the streaming job's pane hashes (:mod:`streamguard.onlinestore.pane_layout`): per
StreamingWindow and entity one ``HMGET`` of the panes of every selected window containing the request's moment,
combined here.

What to read depends only on the selection and on the windows' ends, which change once a slide: a selection
builds its reads once per set of ends (:class:`PaneReads`), not once per request.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streamguard.onlinestore.pane_layout import finish, partials, window_fields
from streamguard.onlinestore.valueproto import Scalar
from streamguard.serving.catalog import WindowGroup
from streamguard.serving.redisio import pack_tail

MEMO_ENTRIES = 4
"""Sets of window ends a :class:`PaneReads` keeps (requests judged a little in the past or future)."""


@dataclass(frozen=True, slots=True)
class PaneRead:
    """The read of one StreamingWindow's pane hash for the selected windows it holds, at one moment: the fields
    of every pane the windows ending after that moment span, and how to combine each window from them."""

    prefix: bytes
    ends: tuple[tuple[str, int], ...]
    """Per group, its suffix and its window's end: with :attr:`prefix` and the entity, what the read depends on
    (two windows of one StreamingWindow may end at the same moment)."""
    ends_key: bytes
    """:attr:`ends` as bytes, for cache keys: bytes keep their hash, a tuple of tuples hashes anew at every use."""
    packed_fields: bytes
    count: int
    width: int
    """How many partials a pane's value holds (one StreamingWindow's panes: the same for every group)."""
    groups: tuple[tuple[WindowGroup, int, int], ...]
    """``(group, first field, field count)``."""

    @classmethod
    def of(cls, prefix: bytes, groups: Sequence[WindowGroup], now_ms: int) -> "PaneRead":
        fields: list[bytes] = []
        parts, ends = [], []
        for group in groups:
            end = group.shape.end_as_of(now_ms)
            own = window_fields(group.slide_number, group.shape.length_ms, group.shape.slide_ms, end)
            parts.append((group, len(fields), len(own)))
            ends.append((group.suffix, end))
            fields += own
        ends_key = repr(ends).encode()
        return cls(prefix, tuple(ends), ends_key, pack_tail(*fields), len(fields), groups[0].width, tuple(parts))

    def decode(self, raw: list[bytes | None]) -> dict[str, tuple[Scalar, ...] | None]:
        """Per group (suffix) the window's values, ``None`` when none of its panes is stored. Every pane read is
        parsed at once: one parse per hash, not per window."""
        out: dict[str, tuple[Scalar, ...] | None] = {}
        width = self.width
        parts = partials(raw, width)
        for group, first, count in self.groups:
            if raw[first : first + count].count(None) == count:
                out[group.suffix] = None
                continue
            values = finish(group.offsets, width, parts[first * width : (first + count) * width])
            out[group.suffix] = tuple([cast(value) for cast, value in zip(group.casts, values, strict=True)])
        return out


class PaneReads:
    """A selection's pane reads per view (in the selection's view order) at a moment, built once per set of window
    ends."""

    def __init__(self, by_view: Sequence[Mapping[bytes, Sequence[WindowGroup]]]) -> None:
        self._by_view = [[(prefix, tuple(members)) for prefix, members in groups.items()] for groups in by_view]
        self._shapes = [group.shape for groups in self._by_view for _, members in groups for group in members]
        self._memo: dict[tuple[int, ...], list[list[PaneRead]]] = {}

    def at(self, now_ms: int) -> list[list[PaneRead]]:
        ends = tuple(shape.end_as_of(now_ms) for shape in self._shapes)
        reads = self._memo.get(ends)
        if reads is None:
            if len(self._memo) >= MEMO_ENTRIES:
                self._memo.clear()
            reads = self._memo[ends] = [[PaneRead.of(prefix, members, now_ms) for prefix, members in groups]
                                        for groups in self._by_view]
        return reads
