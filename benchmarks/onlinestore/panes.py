"""Pane (tile) aggregation: window values as combinations of slide-aligned panes (issue 15, issue 21).

A window of length ``W`` and slide ``S`` covers ``[end - W, end)`` with ``end`` a multiple of ``S``
(:mod:`streamguard.windows`), so it is exactly the ``W / S`` panes ``[p, p + S)`` with
``p = end - W, end - W + S, ..., end - S``. Each pane keeps one partial per aggregation; a window value is
the merge of its panes' partials, finished:

| function | partial | merge | finish |
|---|---|---|---|
| count | events | + | as is |
| sum | sum of the present values (0 when none) | + | as is |
| avg | (sum, present values) | + per part | sum / n, null when n = 0 |
| min, max | the extreme, null when no value is present | min / max ignoring null | as is |

Late events: a pane must accept an event while some window containing it is still open,
``p + W > watermark`` (the last window containing pane ``p`` ends at ``p + W``), and may drop it after
that (:func:`pane_open`: no window that can still be read needs it). Every window open at the current
watermark (``end > watermark``) then holds exactly the events the per-window rule of docs/semantics.md
counts: an event the window counts was filtered with a watermark below ``end <= p + W``, so its pane took
it; an event its pane took but the window did not was filtered with a watermark at or above ``end``, which
would make the window closed now, since the watermark never moves back. Closed windows may differ (their
panes kept taking stragglers for later windows); serving never reads them. Sums are equal up to
floating-point rounding (the addition order differs, as it does between Spark partitions).

Pure functions, no Redis: the benchmark's layouts use them, and so can the streaming job's sink or serving.
"""

from collections.abc import Iterable, Mapping, Sequence

from streamguard.windows import WindowShape

Partial = int | float | tuple[float, int] | None
"""One aggregation's partial over one pane (table above)."""
EMPTY: Mapping[str, Partial] = {"count": 0, "sum": 0, "avg": (0, 0), "min": None, "max": None}


def pane_start(ts_ms: int, slide_ms: int) -> int:
    """The start of the slide-aligned pane holding an event at ``ts_ms``."""
    return ts_ms // slide_ms * slide_ms


def pane_starts(shape: WindowShape, end_ms: int) -> range:
    """The starts of the panes the window ending at ``end_ms`` spans, oldest first."""
    return range(end_ms - shape.length_ms, end_ms, shape.slide_ms)


def pane_open(shape: WindowShape, start_ms: int, watermark_ms: int | None) -> bool:
    """Whether the pane still accepts an event: the last window containing it (ending at ``start + W``) is
    open (``None``: no watermark yet)."""
    return watermark_ms is None or start_ms + shape.length_ms > watermark_ms


def add(function: str, partial: Partial, value: float | None) -> Partial:
    """The partial with one more event (``value``: the event's field, ``None`` when null; unused by count)."""
    if function == "count":
        assert isinstance(partial, int)
        return partial + 1
    if value is None:
        return partial
    if function == "sum":
        assert isinstance(partial, int | float)
        return partial + value
    if function == "avg":
        assert isinstance(partial, tuple)
        return partial[0] + value, partial[1] + 1
    if partial is None:
        return value
    assert isinstance(partial, int | float)
    return min(partial, value) if function == "min" else max(partial, value)


def merge(function: str, a: Partial, b: Partial) -> Partial:
    """Two panes' partials as one."""
    if function in ("count", "sum"):
        assert isinstance(a, int | float) and isinstance(b, int | float)
        return a + b
    if function == "avg":
        assert isinstance(a, tuple) and isinstance(b, tuple)
        return a[0] + b[0], a[1] + b[1]
    if a is None or b is None:
        return b if a is None else a
    assert isinstance(a, int | float) and isinstance(b, int | float)
    return min(a, b) if function == "min" else max(a, b)


def finish(function: str, partial: Partial) -> float | int | None:
    """The window value of a merged partial (what :func:`streamguard.windows.aggregate` gives)."""
    if function == "avg":
        assert isinstance(partial, tuple)
        return partial[0] / partial[1] if partial[1] else None
    assert not isinstance(partial, tuple)
    return partial


def combine(
    shape: WindowShape,
    functions: Sequence[str],
    panes: Mapping[int, Sequence[Partial]],
    end_ms: int,
) -> tuple[float | int | None, ...]:
    """The window ending at ``end_ms``, one value per function, from the panes by start (absent: empty;
    panes outside the window are ignored)."""
    merged = [EMPTY[f] for f in functions]
    for start in pane_starts(shape, end_ms):
        pane = panes.get(start)
        if pane is not None:
            merged = [merge(f, m, p) for f, m, p in zip(functions, merged, pane, strict=True)]
    return tuple(finish(f, m) for f, m in zip(functions, merged, strict=True))


def as_of(
    shape: WindowShape, functions: Sequence[str], panes: Mapping[int, Sequence[Partial]], t_ms: int
) -> tuple[float | int | None, ...]:
    """What serving reads at ``t_ms``: the window that contains ``t_ms`` (docs/semantics.md, the time rule)."""
    return combine(shape, functions, panes, shape.end_as_of(t_ms))


def fold(
    shape: WindowShape,
    functions: Sequence[str],
    events: Iterable[tuple[int, Sequence[float | None], int | None]],
) -> dict[int, list[Partial]]:
    """Panes from ``(event ms, one field value per function, watermark it is filtered with)`` in processing
    order; an event is dropped from a pane that no open window contains (:func:`pane_open`)."""
    panes: dict[int, list[Partial]] = {}
    for ts, values, watermark in events:
        start = pane_start(ts, shape.slide_ms)
        if not pane_open(shape, start, watermark):
            continue
        pane = panes.setdefault(start, [EMPTY[f] for f in functions])
        for i, (function, value) in enumerate(zip(functions, values, strict=True)):
            pane[i] = add(function, pane[i], value)
    return panes
