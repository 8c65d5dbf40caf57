"""Pane (tile) aggregation: the job's state holds one row per (entity, slide, pane), windows are combined from them.

A pane of slide ``S`` covers ``[start, start + S)`` with ``start`` a multiple of ``S``; a window of length ``W`` and
slide ``S`` ending at ``end`` is exactly the panes starting at ``end - W``, ``end - W + S`` ... ``end - S``. So an
event updates one pane per distinct slide (3 state rows for FinServe instead of the 21 windows containing it), and
count, sum, avg (sum and count), min and max of a window are combinations of its panes' partial aggregates.

Spark aggregates the panes (``job.paned``): the pane's grouping struct ends at ``start + longest window of its
slide``, so Spark's watermark drops an event only when every window containing it has closed, and evicts a pane
when no window still open contains it.

The sink stores each changed pane, whole, in the entity's pane hash (``streamguard.onlinestore.pane_layout``) and,
in the same script (:data:`WRITE_PANES`, atomic per call), rewrites every window containing a changed pane from the
hash into today's window layout (``streamguard.onlinestore.window_layout``), except:

* windows ending at or before the watermark Spark filtered the batch's late events with (Spark's previous-batch
  watermark): they are closed, and an event the pane took for a longer window must not enter them (the script
  counts them: the batch's events in the pane missed them);
* windows starting before ``floor``: the hash holds every pane since the store's current generation was seeded
  (``reseed``), not before.

Every write is a whole pane from Spark's state and every window is recomputed from whole panes, so a replayed
batch writes the same values again. Panes that only closed windows contain are removed from the hash.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamguard.onlinestore import pane_layout
from streamguard.onlinestore.pane_layout import PaneAggregation
from streamguard.onlinestore.window_layout import window_infix
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
    """The pane hash outlives every window key written from it."""
    return max(w.expiry_ms for w in plan.windows)


def script_header(plan: StreamPlan) -> list[bytes | int]:
    """The plan's part of :data:`WRITE_PANES`'s arguments (after the watermark and the floor)."""
    slides = plan.slides
    out: list[bytes | int] = [pane_ttl_ms(plan), len(pane_prefix(plan)), len(slides)]
    for slide in slides:
        out += [slide, plan.longest(slide)]
    out.append(len(plan.windows))
    for window in plan.windows:
        out += [slides.index(window.slide_ms) + 1, window.length_ms, window.expiry_ms,
                window_infix(plan.project, plan.view, window.suffix)]
    out.append(len(plan.aggregations))
    for agg in plan.aggregations:
        out += [agg.function.encode(), 1 if agg.integral else 0, agg.name.encode()]
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
local pane_ttl, prefix_len = ARGV[3], tonumber(ARGV[4])
local pos = 5
local slide, longest, windows = {}, {}, {}
for s = 1, tonumber(ARGV[pos]) do
  slide[s], longest[s], windows[s] = tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2]), {}
  pos = pos + 2
end
pos = pos + 1
for _ = 1, tonumber(ARGV[pos]) do
  local list = windows[tonumber(ARGV[pos + 1])]
  list[#list + 1] = {length = tonumber(ARGV[pos + 2]), ttl = ARGV[pos + 3], infix = ARGV[pos + 4]}
  pos = pos + 4
end
pos = pos + 1
local aggs, width = {}, 0
for a = 1, tonumber(ARGV[pos]) do
  local kind = ARGV[pos + 1]
  aggs[a] = {kind = kind, integral = ARGV[pos + 2] == '1', name = ARGV[pos + 3], at = width + 1}
  width = width + (kind == 'avg' and 2 or 1)
  pos = pos + 3
end
pos = pos + 1

local function parse(text)
  local out, i = {}, 1
  for n = 1, width do
    local j = string.find(text, ',', i, true) or (#text + 1)
    out[n] = j > i and tonumber(string.sub(text, i, j - 1)) or false
    i = j + 1
  end
  return out
end

local function decimal(x, integral)
  if integral then return string.format('%d', x) end
  for _, digits in ipairs({'%.15g', '%.16g', '%.17g'}) do
    local text = string.format(digits, x)
    if tonumber(text) == x or digits == '%.17g' then
      if not string.find(text, '[%.eEn]') then text = text .. '.0' end
      return text
    end
  end
end

local function add(a, b) if not a then return b elseif not b then return a else return a + b end end
local function least(a, b) if not (a and b) then return a or b elseif b < a then return b else return a end end
local function most(a, b) if not (a and b) then return a or b elseif b > a then return b else return a end end

local written, skipped = 0, 0
for k = 1, #KEYS do
  local key = KEYS[k]
  local changed = tonumber(ARGV[pos])
  local set = {}
  for i = 1, changed do
    set[#set + 1] = ARGV[pos + 2 * i - 1]
    set[#set + 1] = ARGV[pos + 2 * i]
  end
  redis.call('HSET', key, unpack(set))
  local panes, stale = {}, {}
  for s = 1, #slide do panes[s] = {} end
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local colon = string.find(all[i], ':', 1, true)
    local s, start = tonumber(string.sub(all[i], 1, colon - 1)), tonumber(string.sub(all[i], colon + 1))
    if start + longest[s] <= wm then stale[#stale + 1] = all[i] else panes[s][start] = parse(all[i + 1]) end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  redis.call('PEXPIRE', key, pane_ttl)
  local entity = string.sub(key, prefix_len + 1, -2)
  local done = {}
  for i = 1, changed do
    local field = ARGV[pos + 2 * i - 1]
    local colon = string.find(field, ':', 1, true)
    local s, start = tonumber(string.sub(field, 1, colon - 1)), tonumber(string.sub(field, colon + 1))
    for _, w in ipairs(windows[s]) do
      for e = start + slide[s], start + w.length, slide[s] do
        local wkey = w.infix .. entity .. ':' .. string.format('%d', e)
        if e <= wm and not done[wkey] then
          done[wkey] = true
          skipped = skipped + 1
        elseif e - w.length >= floor and not done[wkey] then
          done[wkey] = true
          local acc = {}
          for p = e - w.length, e - slide[s], slide[s] do
            local pane = panes[s][p]
            if pane then
              for _, a in ipairs(aggs) do
                local at = a.at
                if a.kind == 'min' then acc[at] = least(acc[at], pane[at])
                elseif a.kind == 'max' then acc[at] = most(acc[at], pane[at])
                else
                  acc[at] = add(acc[at], pane[at])
                  if a.kind == 'avg' then acc[at + 1] = add(acc[at + 1], pane[at + 1]) end
                end
              end
            end
          end
          local fields, nulls = {}, {}
          for _, a in ipairs(aggs) do
            local v = acc[a.at]
            if a.kind == 'count' or a.kind == 'sum' then
              v = v or 0
            elseif a.kind == 'avg' then
              v = (v and acc[a.at + 1] and acc[a.at + 1] > 0) and v / acc[a.at + 1] or false
            end
            if v then
              fields[#fields + 1] = a.name
              fields[#fields + 1] = decimal(v, a.integral)
            else
              nulls[#nulls + 1] = a.name
            end
          end
          if #nulls > 0 then redis.call('HDEL', wkey, unpack(nulls)) end
          if #fields > 0 then redis.call('HSET', wkey, unpack(fields)) end
          redis.call('PEXPIRE', wkey, w.ttl)
          written = written + 1
        end
      end
    end
  end
  pos = pos + 1 + 2 * changed
end
return {written, skipped}
"""
"""KEYS: pane hashes, one per entity. ARGV: the watermark and the floor (ms), then :func:`script_header`, then per
key the number of changed panes and their ``(field, value)`` pairs. Returns how many windows it wrote, and how many
(entity, window) pairs the changed panes' new events missed because the window had closed (:class:`Written`)."""
