"""Pane (tile) aggregation: the job's state holds one row per (entity, slide, pane), windows are combined from them.

A pane of slide ``S`` covers ``[start, start + S)`` with ``start`` a multiple of ``S``; a window of length ``W`` and
slide ``S`` ending at ``end`` is exactly the panes starting at ``end - W``, ``end - W + S`` ... ``end - S``. So an
event updates one pane per distinct slide (3 state rows for FinServe instead of the 21 windows containing it), and
count, sum, avg (sum and count), min and max of a window are combinations of its panes' partial aggregates.

Spark aggregates the panes (``job.paned``): the pane's grouping struct ends at ``start + longest window of its
slide``, so Spark's watermark drops an event only when every window containing it has closed, and evicts a pane
when no window still open contains it.

The sink stores each changed pane, whole, in the entity's pane hash (``streamguard.onlinestore.pane_layout``), and
nothing else: serving combines the window containing "now" from the hash when it reads it. That window is exact:

* it ends after the watermark Spark filtered every event so far with (Spark's previous-batch watermark, never
  above the clock), so it holds every event the per-window late rule counts, and its panes have not been pruned;
* an event a pane took for a longer window after a shorter one had closed sits only in windows serving no longer
  reads (the script counts the closed windows the batch's events missed);
* a window starting before the store's current generation was seeded (``reseed``, the coverage's ``since``) is
  read ``stale`` by serving: the hash holds the panes since then only.

Every write is a whole pane from Spark's state, so a replayed batch writes the same values again. Panes that only
closed windows contain are removed from the hash (:data:`WRITE_PANES`, atomic per call).
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamguard.onlinestore import pane_layout
from streamguard.onlinestore.pane_layout import PaneAggregation
from streamguard.workloads.streaming.plan import StreamPlan

KEY, SLIDE, PANE = "entity", "slide", "pane_ms"
"""Columns of the pane frame besides the partials (:func:`partial_columns`)."""
NEVER = -(2**53)
"""A watermark or floor below every event time: nothing is closed, or nothing is too early."""


def partial_columns(plan: StreamPlan) -> list[tuple[str, PaneAggregation, str]]:
    """``(column, aggregation, part)`` of every partial, in the order the pane value holds them."""
    return plan.pane_shape.partials()


def pane_key(plan: StreamPlan, entity: bytes) -> bytes:
    """Every pane of one entity of one view (``pane_layout.pane_key``)."""
    return pane_layout.pane_key(pane_prefix(plan), entity)


def pane_prefix(plan: StreamPlan) -> bytes:
    return pane_layout.pane_prefix(plan.project, plan.view, plan.pane_shape.state_id())


def pane_ttl_ms(plan: StreamPlan) -> int:
    """How long a pane hash lives after its last write: long enough to be read while a window it holds is current."""
    return max(w.expiry_ms for w in plan.windows)


def script_header(plan: StreamPlan) -> list[bytes | int]:
    """The plan's part of :data:`WRITE_PANES`'s arguments (after the watermark and the floor)."""
    slides = plan.slides
    out: list[bytes | int] = [pane_ttl_ms(plan), len(slides)]
    for slide in slides:
        out += [slide, plan.longest(slide)]
    out.append(len(plan.windows))
    for window in plan.windows:
        out += [slides.index(window.slide_ms) + 1, window.length_ms]
    return out


@dataclass(frozen=True)
class EntityPanes:
    key: bytes
    panes: tuple[tuple[bytes, bytes], ...]
    """``(field, value)`` of each changed pane."""


def render(plan: StreamPlan, columns: Mapping[str, Sequence[Any]]) -> Iterator[EntityPanes]:
    """The changed panes of one batch (column-wise), grouped by entity (pure)."""
    partials = [columns[name] for name, _, _ in partial_columns(plan)]
    prefix = pane_prefix(plan)
    grouped: dict[Any, list[tuple[bytes, bytes]]] = {}
    for row, raw in enumerate(columns[KEY]):
        if raw is None:
            continue
        field = pane_layout.pane_field(int(columns[SLIDE][row]) + 1, int(columns[PANE][row]))
        value = pane_layout.encode_pane(column[row] for column in partials)
        grouped.setdefault(raw, []).append((field, value))
    for raw, panes in grouped.items():
        yield EntityPanes(pane_layout.pane_key(prefix, plan.entity_key(raw)), tuple(panes))


WRITE_PANES = """
local wm, floor = tonumber(ARGV[1]), tonumber(ARGV[2])
local pane_ttl = ARGV[3]
local pos = 4
local slide, longest, lengths = {}, {}, {}
for s = 1, tonumber(ARGV[pos]) do
  slide[s], longest[s], lengths[s] = tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2]), {}
  pos = pos + 2
end
pos = pos + 1
for _ = 1, tonumber(ARGV[pos]) do
  local list = lengths[tonumber(ARGV[pos + 1])]
  list[#list + 1] = tonumber(ARGV[pos + 2])
  pos = pos + 2
end
pos = pos + 1

local written, skipped = 0, 0
for k = 1, #KEYS do
  local key = KEYS[k]
  local changed = tonumber(ARGV[pos])
  local set, counted = {}, {}
  for i = 1, changed do
    local field = ARGV[pos + 2 * i - 1]
    set[#set + 1] = field
    set[#set + 1] = ARGV[pos + 2 * i]
    local colon = string.find(field, ':', 1, true)
    local s, start = tonumber(string.sub(field, 1, colon - 1)), tonumber(string.sub(field, colon + 1))
    for _, length in ipairs(lengths[s]) do
      for e = start + slide[s], start + length, slide[s] do
        local window = string.format('%d:%d', length, e)
        if not counted[window] then
          counted[window] = true
          if e <= wm then skipped = skipped + 1 elseif e - length >= floor then written = written + 1 end
        end
      end
    end
  end
  redis.call('HSET', key, unpack(set))
  local stale = {}
  for _, field in ipairs(redis.call('HKEYS', key)) do
    local colon = string.find(field, ':', 1, true)
    local s = tonumber(string.sub(field, 1, colon - 1))
    if tonumber(string.sub(field, colon + 1)) + longest[s] <= wm then stale[#stale + 1] = field end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  redis.call('PEXPIRE', key, pane_ttl)
  pos = pos + 1 + 2 * changed
end
return {written, skipped}
"""
"""KEYS: pane hashes, one per entity. ARGV: the watermark and the floor (ms), then :func:`script_header`, then per
key the number of changed panes and their ``(field, value)`` pairs. Returns how many (entity, window) pairs whose
value changed it stored (open windows starting at or after the floor), and how many the changed panes' new events
missed because the window had closed."""
