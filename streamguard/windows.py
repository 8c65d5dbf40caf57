"""Sliding-window semantics shared by the streaming job, the batch job and serving.

For window length ``W`` and slide ``S`` (milliseconds, ``W`` a multiple of ``S``), windows end at
multiples of ``S`` and cover ``[end - W, end)``. The value "as of" time ``t`` is the window that contains
``t`` and closes first, ``end = floor(t / S) * S + S``, over the events before ``t``
(``end - W <= ts < t``, milliseconds): serving reads that window while the stream fills it, and a
training row at ``t`` holds the same value (docs/semantics.md, "The time rule"). An empty window has count 0, sum 0 and
null avg/min/max.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from streamguard.api.durations import parse_duration


@dataclass(frozen=True)
class WindowShape:
    length_ms: int
    slide_ms: int

    def __post_init__(self) -> None:
        if self.slide_ms <= 0 or self.length_ms <= 0:
            raise ValueError(f"window length and slide must be positive (got {self.length_ms}, {self.slide_ms})")
        if self.length_ms % self.slide_ms:
            raise ValueError(f"window length {self.length_ms} ms is not a multiple of slide {self.slide_ms} ms")

    @classmethod
    def parse(cls, length: str, slide: str) -> "WindowShape":
        return cls(_millis(length), _millis(slide))

    def end_as_of(self, t_ms: int) -> int:
        """End of the window that contains ``t_ms`` and closes first."""
        return (t_ms // self.slide_ms) * self.slide_ms + self.slide_ms

    def ends_containing(self, ts_ms: int) -> range:
        """Ends of every window that contains an event at ``ts_ms``: ``end - W <= ts < end``."""
        first = self.end_as_of(ts_ms)
        return range(first, ts_ms + self.length_ms + 1, self.slide_ms)


def _millis(duration: str) -> int:
    return int(parse_duration(duration).total_seconds() * 1000)


def aggregate(function: str, values: Iterable[float | None]) -> float | int | None:
    """``count``/``sum``/``avg``/``min``/``max`` over one window's values; nulls are ignored except by count."""
    items = list(values)
    if function == "count":
        return len(items)
    present = [v for v in items if v is not None]
    if function == "sum":
        return sum(present) if present else 0
    if not present:
        return None
    if function == "avg":
        return sum(present) / len(present)
    if function == "min":
        return min(present)
    if function == "max":
        return max(present)
    raise ValueError(f"unknown aggregation {function!r} (expected count, sum, avg, min, max)")


def empty_value(function: str) -> float | int | None:
    """The value of an aggregation over an empty window."""
    return aggregate(function, [])
