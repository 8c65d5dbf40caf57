"""Layout study (issue 21, point 1): bytes per active account and read cost of compact window layouts.

Runs its own redis-server (defaults: ``hash-max-listpack-entries 128``, ``hash-max-listpack-value 64``,
``noeviction``). FinServe's ``account-activity`` windows (1m/15s, 5m/1m, 1h/5m; count, sum, max) for
``--accounts`` accounts, each with the events of an activity profile over the last 72 minutes (the
longest key expiry, so nothing older leaves state behind), processed in order. Every layout is the state a
writer leaves at ``now`` after writing those events as they came:

- ``a-today``: one hash per (entity, view, window, window end), written by the streaming job's own sink
  (``RedisSink``) for every window an event belongs to, kept while its key has not expired;
- ``b-panes``: one hash per (entity, view), field ``<window>:<pane start ms>:<aggregation>`` (ASCII), the
  panes serving may still read (the writer drops a pane once no window containing it can be current);
- ``c-windows``: one hash per (entity, view), field ``<window>:<window end ms>:<aggregation>`` (ASCII), the
  windows serving may still read (the sink combines panes, from its own state, into every window an event
  belongs to);
- ``d-pane-ring``: ``b`` packed: one field per (window, ring slot ``pane number mod W/S``) holding the
  pane's number, count, sum and max as 24 binary bytes; a stale slot is recognised by its pane number;
- ``d-window-ring``: ``c`` packed the same way (slot ``window end / S mod W/S``);
- ``d-pane-string``: the pane ring as one fixed-layout string per (entity, view) (written with
  ``SETRANGE`` at the slot's offset).

Keys of ``b`` to ``d`` carry a hash tag on the entity (``sgl:{<Feast entity key>}<project>:<view>``).
Bytes per account are ``used_memory`` growth (what ``maxmemory`` counts) and the mean ``MEMORY USAGE`` of
an account's keys. A serving lookup (one account's 9 values as of ``now``) is measured on a sample: round
trips, commands, RESP bytes returned, Redis time per lookup (``commandstats``) and the Python CPU time to
turn the reply into the 9 values; every sampled reply is checked against the reference values.

With ``--cluster-masters N`` the job's layout (``e-job-panes``) is also written, through the job's own sink, into
a Redis Cluster of N masters on loopback: bytes per active account summed over the masters, keys per master, and
every sampled lookup checked (issue 21's sizing on a cluster).

    nice -n 5 .venv/bin/python benchmarks/onlinestore/layout.py --accounts 20000
    nice -n 5 .venv/bin/python benchmarks/onlinestore/layout.py --layouts e-job-panes --cluster-masters 3 \
        --out benchmarks/results/onlinestore-layout-cluster.json
"""

import argparse
import json
import math
import os
import random
import struct
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import redis
from redis.cluster import RedisCluster

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.onlinestore.panes import EMPTY, Partial, add, as_of, combine, fold, pane_start  # noqa: E402
from benchmarks.onlinestore.run import mean_usage, used_memory, window_plan  # noqa: E402
from streamguard.devstack.machine import machine_facts  # noqa: E402
from streamguard.devstack.private_redis import private_redis, private_redis_cluster  # noqa: E402
from streamguard.onlinestore.client import Store  # noqa: E402
from streamguard.onlinestore.feast_layout import serialize_entity_key  # noqa: E402
from streamguard.onlinestore.pane_layout import combine as combine_panes  # noqa: E402
from streamguard.onlinestore.pane_layout import window_fields  # noqa: E402
from streamguard.onlinestore.window_layout import encode_number  # noqa: E402
from streamguard.windows import WindowShape  # noqa: E402
from streamguard.workloads.streaming import panes as job_panes  # noqa: E402
from streamguard.workloads.streaming.plan import StreamPlan, WindowPlan  # noqa: E402
from streamguard.workloads.streaming.sink import RedisSink  # noqa: E402

FUNCTIONS = ("count", "sum", "max")
"""FinServe's aggregations, in the plan's order (the benchmark checks)."""
SLOT = struct.Struct("<IIdd")
"""A ring slot: pane (or window end) number, count, sum, max (NaN: null)."""
Values = tuple[float | int | None, ...]
Reply = Any


@dataclass(frozen=True)
class Account:
    id: str
    entity: bytes
    events: list[tuple[int, float]]
    """(event ms, amount), in processing order (event-time order here)."""

    @property
    def last_ms(self) -> int:
        return self.events[-1][0]


@dataclass(frozen=True)
class Window:
    plan: WindowPlan
    shape: WindowShape
    index: int

    @property
    def slots(self) -> int:
        return self.shape.length_ms // self.shape.slide_ms


def activity(profile: str, accounts: int, now_ms: int, history_ms: int, seed: int) -> list[Account]:
    """Each account's events over ``[now - history, now)``: ``finserve`` is FinServe's rate (10 events/s over
    6,000 accounts: one per 600 s on average, Poisson); ``busy`` an event in every 15 s pane."""
    rng = random.Random(seed)
    out = []
    for i in range(accounts):
        if profile == "busy":
            times = [now_ms - history_ms + k * 15_000 + rng.randrange(15_000) for k in range(history_ms // 15_000)]
        else:
            times, t = [], now_ms - history_ms + int(rng.expovariate(1 / 600_000))
            while t < now_ms:
                times.append(t)
                t += int(rng.expovariate(1 / 600_000)) + 1
        if times:
            events = [(t, round(rng.lognormvariate(4, 1), 2)) for t in sorted(times)]
            name = f"A{i:07d}"
            out.append(Account(name, serialize_entity_key({"account_id": name}), events))
    return out


def panes_of(window: Window, account: Account) -> dict[int, list[Partial]]:
    return fold(window.shape, FUNCTIONS, [(ts, (None, a, a), None) for ts, a in account.events])


def reference(windows: Sequence[Window], account: Account, now_ms: int) -> Values:
    """The 9 values serving must return at ``now`` (window-major, as the view's features are read)."""
    return tuple(v for w in windows for v in as_of(w.shape, FUNCTIONS, panes_of(w, account), now_ms))


def _pack(number: int, partials: Sequence[Partial]) -> bytes:
    count, total, top = partials
    return SLOT.pack(number, count, total, math.nan if top is None else top)


def _unpack(raw: bytes) -> tuple[int, list[Partial]]:
    number, count, total, top = SLOT.unpack(raw)
    return number, [count, total, None if math.isnan(top) else top]


def _finish(partials: Sequence[Partial]) -> Values:
    return tuple(cast(float | int | None, p) for p in partials)


class Layout(ABC):
    """Writes accounts' state as its writer would leave it at ``now``, and reads one account's 9 values."""

    name = ""
    description = ""

    def __init__(self, plan: StreamPlan, windows: Sequence[Window]) -> None:
        self.plan = plan
        self.windows = windows
        self.expiry_ms = max(w.plan.expiry_ms for w in windows)
        self.tail = f"{plan.project}:{plan.view}".encode()

    def key(self, account: Account) -> bytes:
        return b"sgl:{" + account.entity + b"}" + self.tail

    def alive(self, account: Account, now_ms: int) -> bool:
        return account.last_ms + self.expiry_ms > now_ms

    @abstractmethod
    def write(self, client: redis.Redis, accounts: Sequence[Account], now_ms: int) -> dict[bytes, list[bytes]]:
        """Writes the state; the keys per account entity."""

    @abstractmethod
    def request(self, pipe: Any, account: Account, now_ms: int) -> None:
        """Adds the lookup's commands to ``pipe``."""

    @abstractmethod
    def decode(self, replies: Sequence[Reply], now_ms: int) -> Values:
        """The 9 values from the lookup's replies."""


class HashLayout(Layout):
    """A layout of one key per (entity, view), written for each live account in one pipeline."""

    def write(self, client: redis.Redis, accounts: Sequence[Account], now_ms: int) -> dict[bytes, list[bytes]]:
        pipe = client.pipeline(transaction=False)
        keys = {}
        for account in accounts:
            if not self.alive(account, now_ms):
                continue
            key = self.key(account)
            self.put(pipe, key, account)
            keys[account.entity] = [key]
            if len(pipe) > 2000:
                pipe.execute()
        pipe.execute()
        return keys

    def put(self, pipe: Any, key: bytes, account: Account) -> None:
        """Adds the commands leaving ``account``'s state under ``key``: a hash of :meth:`fields`, expiring."""
        pipe.hset(key, mapping=self.fields(account))
        pipe.pexpire(key, self.expiry_ms)

    @abstractmethod
    def fields(self, account: Account) -> dict[bytes, bytes]:
        """The hash the writer leaves for ``account``."""


class Today(Layout):
    name = "a-today"
    description = ("hash per (entity, view, window, window end), 3 ASCII fields, expiring (the job's sink before "
                   "issue 21: sgw:<project>:<view>:<window>:<entity>:<end>)")

    def write(self, client: redis.Redis, accounts: Sequence[Account], now_ms: int) -> dict[bytes, list[bytes]]:
        names = [a.name for a in self.plan.aggregations]
        keys: dict[bytes, list[bytes]] = {}
        pipe = client.pipeline(transaction=False)
        for account in accounts:
            own = keys.setdefault(account.entity, [])
            for window in self.windows:
                panes = panes_of(window, account)
                last: dict[int, int] = {}
                for ts, _ in account.events:
                    for end in window.shape.ends_containing(ts):
                        last[end] = ts
                for end, written in last.items():
                    if written + window.plan.expiry_ms <= now_ms:
                        continue  # the key has expired
                    key = self._key(account, window, end)
                    values = combine(window.shape, FUNCTIONS, panes, end)
                    fields = {n: encode_number(v) for n, v in zip(names, values, strict=True)}
                    pipe.hset(key, mapping={n: v for n, v in fields.items() if v is not None})  # type: ignore[arg-type]
                    pipe.pexpire(key, written + window.plan.expiry_ms - now_ms)
                    own.append(key)
            if len(pipe) > 2000:
                pipe.execute()
        pipe.execute()
        return keys

    def _key(self, account: Account, window: Window, end: int) -> bytes:
        return b"sgw:%s:%s:%s:%s:%d" % (self.plan.project.encode(), self.plan.view.encode(),
                                        window.plan.suffix.encode(), account.entity, end)

    def request(self, pipe: Any, account: Account, now_ms: int) -> None:
        names = [a.name for a in self.plan.aggregations]
        for window in self.windows:
            pipe.hmget(self._key(account, window, window.shape.end_as_of(now_ms)), names)

    def decode(self, replies: Sequence[Reply], now_ms: int) -> Values:
        out: list[float | int | None] = []
        for raw in replies:
            if raw[0] is None and raw[1] is None and raw[2] is None:
                out.extend((0, 0.0, None))
            else:
                out.append(int(raw[0]))
                out.append(None if raw[1] is None else float(raw[1]))
                out.append(None if raw[2] is None else float(raw[2]))
        return tuple(out)


class Panes(HashLayout):
    name = "b-panes"
    description = "hash per (entity, view), field <window>:<pane start>:<agg> (ASCII), combined at read"

    def fields(self, account: Account) -> dict[bytes, bytes]:
        mapping: dict[bytes, bytes] = {}
        for window in self.windows:
            for start, partials in panes_of(window, account).items():
                if start + window.shape.length_ms <= account.last_ms:
                    continue  # no window containing it can be current any more: the writer dropped it
                for name, value in zip(FUNCTIONS, partials, strict=True):
                    raw = encode_number(cast(float | int | None, value))
                    if raw is not None:
                        mapping[b"%s:%d:%s" % (window.plan.suffix.encode(), start, name.encode())] = raw
        return mapping

    def request(self, pipe: Any, account: Account, now_ms: int) -> None:
        pipe.hgetall(self.key(account))

    def decode(self, replies: Sequence[Reply], now_ms: int) -> Values:
        by_window: dict[bytes, dict[int, list[Partial]]] = {w.plan.suffix.encode(): {} for w in self.windows}
        for field, raw in replies[0].items():
            suffix, start, name = field.split(b":")
            pane = by_window[suffix].setdefault(int(start), [0, 0, None])
            if name == b"count":
                pane[0] = int(raw)
            elif name == b"sum":
                pane[1] = float(raw)
            else:
                pane[2] = float(raw)
        out: list[float | int | None] = []
        for window in self.windows:
            out.extend(as_of(window.shape, FUNCTIONS, by_window[window.plan.suffix.encode()], now_ms))
        return tuple(out)


class Windows(HashLayout):
    name = "c-windows"
    description = "hash per (entity, view), field <window>:<window end>:<agg> (ASCII), the sink combines"

    def fields(self, account: Account) -> dict[bytes, bytes]:
        mapping: dict[bytes, bytes] = {}
        for window in self.windows:
            panes = panes_of(window, account)
            for end in window.shape.ends_containing(account.last_ms):
                values = combine(window.shape, FUNCTIONS, panes, end)
                if values[0] == 0:
                    continue  # an empty window is an absent one
                for name, value in zip(FUNCTIONS, values, strict=True):
                    raw = encode_number(value)
                    if raw is not None:
                        mapping[b"%s:%d:%s" % (window.plan.suffix.encode(), end, name.encode())] = raw
        return mapping

    def request(self, pipe: Any, account: Account, now_ms: int) -> None:
        fields: list[bytes] = []
        for window in self.windows:
            end = window.shape.end_as_of(now_ms)
            fields.extend(b"%s:%d:%s" % (window.plan.suffix.encode(), end, n.encode()) for n in FUNCTIONS)
        pipe.hmget(self.key(account), fields)

    def decode(self, replies: Sequence[Reply], now_ms: int) -> Values:
        raw = replies[0]
        out: list[float | int | None] = []
        for i in range(0, len(raw), 3):
            if raw[i] is None:
                out.extend((0, 0.0, None))
            else:
                out.append(int(raw[i]))
                out.append(None if raw[i + 1] is None else float(raw[i + 1]))
                out.append(None if raw[i + 2] is None else float(raw[i + 2]))
        return tuple(out)


class PaneRing(HashLayout):
    name = "d-pane-ring"
    description = "hash per (entity, view), field (window, pane number mod W/S) -> 24 binary bytes, combined at read"

    def ring(self, window: Window, account: Account) -> dict[int, bytes]:
        """Slot -> packed pane: the newest pane written to each slot (older ones were overwritten)."""
        out = {}
        for start, partials in sorted(panes_of(window, account).items()):
            number = start // window.shape.slide_ms
            out[number % window.slots] = _pack(number, partials)
        return out

    def fields(self, account: Account) -> dict[bytes, bytes]:
        return {bytes((w.index, slot)): raw for w in self.windows for slot, raw in self.ring(w, account).items()}

    def request(self, pipe: Any, account: Account, now_ms: int) -> None:
        pipe.hgetall(self.key(account))

    def decode(self, replies: Sequence[Reply], now_ms: int) -> Values:
        by_window: list[dict[int, list[Partial]]] = [{} for _ in self.windows]
        for field, raw in replies[0].items():
            number, partials = _unpack(raw)
            by_window[field[0]][number * self.windows[field[0]].shape.slide_ms] = partials
        out: list[float | int | None] = []
        for window, panes in zip(self.windows, by_window, strict=True):
            out.extend(as_of(window.shape, FUNCTIONS, panes, now_ms))
        return tuple(out)


class WindowRing(HashLayout):
    name = "d-window-ring"
    description = "hash per (entity, view), field (window, end number mod W/S) -> 24 binary bytes, the sink combines"

    def fields(self, account: Account) -> dict[bytes, bytes]:
        mapping: dict[bytes, bytes] = {}
        for window in self.windows:
            panes = panes_of(window, account)
            slide = window.shape.slide_ms
            # each event rewrote every window it belongs to: the last event's windows fill every slot
            for end in window.shape.ends_containing(account.last_ms):
                values = combine(window.shape, FUNCTIONS, panes, end)
                mapping[bytes((window.index, end // slide % window.slots))] = _pack(end // slide, values)
        return mapping

    def request(self, pipe: Any, account: Account, now_ms: int) -> None:
        fields: list[bytes] = []
        for window in self.windows:
            end = window.shape.end_as_of(now_ms) // window.shape.slide_ms
            fields.append(bytes((window.index, end % window.slots)))
        pipe.hmget(self.key(account), fields)

    def decode(self, replies: Sequence[Reply], now_ms: int) -> Values:
        out: list[float | int | None] = []
        for window, raw in zip(self.windows, replies[0], strict=True):
            if raw is not None:
                number, partials = _unpack(raw)
                if number * window.shape.slide_ms == window.shape.end_as_of(now_ms):
                    out.extend(_finish(partials))
                    continue
            out.extend((0, 0.0, None))
        return tuple(out)


class PaneString(PaneRing):
    name = "d-pane-string"
    description = "one string per (entity, view): every window's pane ring at fixed offsets, combined at read"

    def offsets(self) -> list[int]:
        out, at = [], 0
        for window in self.windows:
            out.append(at)
            at += window.slots * SLOT.size
        return out

    def put(self, pipe: Any, key: bytes, account: Account) -> None:
        offsets = self.offsets()
        image = bytearray(offsets[-1] + self.windows[-1].slots * SLOT.size)  # zero: pane 0 matches no real pane
        for window, offset in zip(self.windows, offsets, strict=True):
            for slot, raw in self.ring(window, account).items():
                image[offset + slot * SLOT.size:offset + (slot + 1) * SLOT.size] = raw
        pipe.set(key, bytes(image), px=self.expiry_ms)

    def request(self, pipe: Any, account: Account, now_ms: int) -> None:
        pipe.get(self.key(account))

    def decode(self, replies: Sequence[Reply], now_ms: int) -> Values:
        raw = replies[0] or b""
        out: list[float | int | None] = []
        at = 0
        for window in self.windows:
            slide = window.shape.slide_ms
            end = window.shape.end_as_of(now_ms) // slide
            first = end - window.slots
            merged: list[Partial] = [EMPTY[f] for f in FUNCTIONS]
            for number, count, total, top in SLOT.iter_unpack(raw[at:at + window.slots * SLOT.size]):
                if first <= number < end and count:
                    merged[0] = cast(int, merged[0]) + count
                    merged[1] = cast(float, merged[1]) + total
                    if not math.isnan(top) and (merged[2] is None or top > cast(float, merged[2])):
                        merged[2] = top
            at += window.slots * SLOT.size
            out.extend(_finish(merged))
        return tuple(out)


PANE = struct.Struct("<Idd")
"""A packed pane's value: count, sum, max (NaN: null)."""
PANE_ID = struct.Struct("<BI")
"""A packed pane's field: window index, pane number (pane start / slide)."""
WRITE_PANE = """
local w, number, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local newest = number
local fields = redis.call('HKEYS', KEYS[1])
for _, f in ipairs(fields) do
  local fw, fn = struct.unpack('<BI4', f)
  if fw == w and fn > newest then newest = fn end
end
local oldest = newest - keep + 1
if number >= oldest then redis.call('HSET', KEYS[1], ARGV[4], ARGV[5]) end
for _, f in ipairs(fields) do
  local fw, fn = struct.unpack('<BI4', f)
  if fw == w and fn < oldest then redis.call('HDEL', KEYS[1], f) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return newest
"""
"""The writer's pane update (whole pane value, idempotent). KEYS: the entity's hash. ARGV: window index,
pane number, panes per window (W / S), field, value, key TTL (ms). Keeps only the window's newest W / S
panes (a pane older than that cannot be in a window serving reads, as long as no event is stamped in a later
pane than serving's clock) and never writes one older than them."""


class PanePacked(HashLayout):
    name = "d-pane-packed"
    description = ("hash per (entity, view), field (window, pane number) -> count, sum, max packed (20 bytes); "
                   "the writer keeps each window's newest W/S panes (Lua); combined at read")

    def fields(self, account: Account) -> dict[bytes, bytes]:
        """What the writer leaves: each window's panes of the newest W / S pane numbers it wrote."""
        out = {}
        for window in self.windows:
            panes = panes_of(window, account)
            newest = max(panes) // window.shape.slide_ms
            for start, (count, total, top) in panes.items():
                number = start // window.shape.slide_ms
                if number > newest - window.slots:
                    out[PANE_ID.pack(window.index, number)] = PANE.pack(
                        count, total, math.nan if top is None else top)
        return out

    def replay(self, client: redis.Redis, account: Account) -> dict[bytes, bytes]:
        """Writes the account's events one by one as the sink would (each event: its pane in every window,
        whole values, through :data:`WRITE_PANE`) and returns the hash it leaves."""
        script = client.register_script(WRITE_PANE)
        key = b"replay:" + self.key(account)
        panes: list[dict[int, list[Partial]]] = [{} for _ in self.windows]
        pipe = client.pipeline(transaction=False)
        for ts, amount in account.events:
            for window in self.windows:
                start = pane_start(ts, window.shape.slide_ms)
                pane = panes[window.index].setdefault(start, [EMPTY[f] for f in FUNCTIONS])
                for i, function in enumerate(FUNCTIONS):
                    pane[i] = add(function, pane[i], None if function == "count" else amount)
                count, total, top = pane
                number = start // window.shape.slide_ms
                script(keys=[key], args=[window.index, number, window.slots, PANE_ID.pack(window.index, number),
                                         PANE.pack(count, total, math.nan if top is None else top), self.expiry_ms],
                       client=pipe)
        pipe.execute()
        left = cast(dict[bytes, bytes], client.hgetall(key))  # type: ignore[arg-type]
        client.delete(key)
        return left

    def request(self, pipe: Any, account: Account, now_ms: int) -> None:
        pipe.hgetall(self.key(account))

    def decode(self, replies: Sequence[Reply], now_ms: int) -> Values:
        bounds = []
        for window in self.windows:
            end = window.shape.end_as_of(now_ms) // window.shape.slide_ms
            bounds.append((end - window.slots, end))
        merged: list[list[Any]] = [[0, 0.0, None] for _ in self.windows]
        for field, raw in replies[0].items():
            w, number = PANE_ID.unpack(field)
            first, end = bounds[w]
            if first <= number < end:
                count, total, top = PANE.unpack(raw)
                into = merged[w]
                into[0] += count
                into[1] += total
                if top == top and (into[2] is None or top > into[2]):  # NaN: no value
                    into[2] = top
        return tuple(v for values in merged for v in values)


class JobPanes(Layout):
    name = "e-job-panes"
    description = ("what the streaming job writes since issue 21: one hash per (entity, view), field <slide>:<pane "
                   "start>, ASCII partials, through the job's own script (pruned at the watermark); serving's combine")

    def write(self, client: Store, accounts: Sequence[Account], now_ms: int) -> dict[bytes, list[bytes]]:
        sink = RedisSink(client, self.plan)
        watermark = now_ms - self.plan.watermark_ms
        columns = job_panes.partial_columns(self.plan)
        keys: dict[bytes, list[bytes]] = {}
        for first in range(0, len(accounts), 500):
            frame: dict[str, list[Any]] = {job_panes.KEY: [], job_panes.SLIDE: [], job_panes.PANE: [],
                                           **{name: [] for name, _, _ in columns}}
            for account in accounts[first:first + 500]:
                for window in self.windows:
                    slide = window.plan.slide_ms
                    for start, partials in panes_of(window, account).items():
                        if start + self.plan.longest(slide) <= watermark:
                            continue  # no open window contains it: Spark's state evicted it
                        frame[job_panes.KEY].append(account.id)
                        frame[job_panes.SLIDE].append(self.plan.slides.index(slide))
                        frame[job_panes.PANE].append(start)
                        for (name, _, _), value in zip(columns, partials, strict=True):
                            frame[name].append(value)
                        keys[account.entity] = [job_panes.pane_key(self.plan, account.entity)]
            sink.write_panes(frame, watermark, job_panes.NEVER)
        return keys

    def request(self, pipe: Any, account: Account, now_ms: int) -> None:
        shape = self.plan.pane_shape
        fields = [f for w in self.windows for f in window_fields(
            shape.slide_number(w.shape.slide_ms), w.shape.length_ms, w.shape.slide_ms, w.shape.end_as_of(now_ms))]
        pipe.hmget(job_panes.pane_key(self.plan, account.entity), fields)

    def decode(self, replies: Sequence[Reply], now_ms: int) -> Values:
        shape = self.plan.pane_shape
        offsets, width, raw, at = shape.offsets(), shape.width, replies[0], 0
        out: list[float | int | None] = []
        for window in self.windows:
            count = window.slots
            panes = [item for item in raw[at:at + count] if item is not None]
            out.extend(combine_panes(offsets, width, panes) if panes else (0, 0.0, None))
            at += count
        return tuple(out)


LAYOUTS: tuple[type[Layout], ...] = (Today, Panes, Windows, PaneRing, WindowRing, PaneString, PanePacked, JobPanes)


def resp_size(reply: Reply) -> int:
    """Bytes of a RESP2 reply as the server sends it."""
    if reply is None:
        return 5  # $-1\r\n
    if isinstance(reply, bytes):
        return len(b"$%d\r\n" % len(reply)) + len(reply) + 2
    if isinstance(reply, int):
        return len(b":%d\r\n" % reply)
    if isinstance(reply, dict):  # HGETALL: a flat array on the wire
        items = [x for pair in reply.items() for x in pair]
        return len(b"*%d\r\n" % len(items)) + sum(resp_size(x) for x in items)
    return len(b"*%d\r\n" % len(reply)) + sum(resp_size(x) for x in reply)


def _same(a: Values, b: Values) -> bool:
    return all((x is None and y is None) or (x is not None and y is not None and math.isclose(x, y, rel_tol=1e-12))
               for x, y in zip(a, b, strict=True))


def measure(
    client: redis.Redis,
    layout: Layout,
    accounts: Sequence[Account],
    now_ms: int,
    sample: int,
    repeat: int,
    replay: int,
) -> dict[str, Any]:
    client.flushall()
    before = used_memory(client)
    began = time.perf_counter()
    keys = layout.write(client, accounts, now_ms)
    write_s = time.perf_counter() - began
    used = used_memory(client) - before
    active = [a for a in accounts if a.last_ms > now_ms - 3_600_000]
    rng = random.Random(1)
    picked = rng.sample(active, min(sample, len(active)))
    usage = [mean_usage(client, keys[a.entity]) * len(keys[a.entity]) for a in picked[:1000] if keys.get(a.entity)]
    first_key = next(k for a in picked for k in keys.get(a.entity, []))
    encoding = cast(bytes, client.object("encoding", first_key)).decode()
    key_count = cast(int, client.dbsize())

    # one lookup per account: one pipeline, one round trip
    client.config_resetstat()
    replies = []
    for account in picked:
        pipe = client.pipeline(transaction=False)
        layout.request(pipe, account, now_ms)
        replies.append((len(pipe), pipe.execute()))
    stats = cast(dict[str, Any], client.info("commandstats"))
    redis_usec = sum(float(s["usec"]) for name, s in stats.items() if name != "cmdstat_config") / len(picked)
    wrong = [a.entity for a, (_, r) in zip(picked, replies, strict=True)
             if not _same(layout.decode(r, now_ms), reference(layout.windows, a, now_ms))]
    if wrong:
        raise AssertionError(f"{layout.name}: {len(wrong)} lookups differ from the reference, e.g. {wrong[0]!r}")
    replayed = 0
    if isinstance(layout, PanePacked):  # the writer's script leaves exactly the state measured
        for account in picked[:replay]:
            left = layout.replay(client, account)
            if left != layout.fields(account):
                raise AssertionError(f"{layout.name}: the writer's script left {left!r} for {account.id}")
            replayed += 1
    passes = []
    for _ in range(repeat):
        began_cpu = time.process_time()
        for _, reply in replies:
            layout.decode(reply, now_ms)
        passes.append((time.process_time() - began_cpu) / len(replies) * 1e6)
    return {
        "layout": layout.name,
        "description": layout.description,
        "accounts_with_events": len(accounts),
        "active_accounts": len(active),
        "keys": key_count,
        "encoding": encoding,
        "used_memory_bytes": used,
        "bytes_per_active_account": round(used / len(active), 1),
        "memory_usage_per_account": round(sum(usage) / len(usage), 1),
        "write_seconds": round(write_s, 2),
        "lookup_round_trips": 1,
        "lookup_commands": replies[0][0],
        "lookup_reply_bytes": round(sum(resp_size(r) for _, rs in replies for r in rs) / len(replies), 1),
        "lookup_redis_usec": round(redis_usec, 2),
        "lookup_decode_usec": round(min(passes), 2),
        "lookup_decode_usec_median": round(sorted(passes)[len(passes) // 2], 2),
        "lookups_checked": len(picked),
        "writer_script_replays_checked": replayed,
    }


def measure_cluster(
    client: RedisCluster, masters: Sequence[redis.Redis], layout: JobPanes, accounts: Sequence[Account], now_ms: int,
    sample: int,
) -> dict[str, Any]:
    """The job's pane layout written through its own sink into a Redis Cluster: ``used_memory`` growth summed over
    the masters, keys per master, ``MEMORY USAGE`` of sampled accounts' keys, and every sampled lookup (a cluster
    pipeline) checked against the reference."""
    for master in masters:
        master.flushall()
    before = sum(used_memory(master) for master in masters)
    began = time.perf_counter()
    keys = layout.write(client, accounts, now_ms)
    write_s = time.perf_counter() - began
    used = sum(used_memory(master) for master in masters) - before
    active = [a for a in accounts if a.last_ms > now_ms - 3_600_000]
    picked = random.Random(1).sample(active, min(sample, len(active)))
    usage = [sum(cast(int, client.memory_usage(key, samples=0)) for key in keys[a.entity])
             for a in picked[:1000] if keys.get(a.entity)]
    wrong = []
    for account in picked:
        pipe = client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
        layout.request(pipe, account, now_ms)
        if not _same(layout.decode(pipe.execute(), now_ms), reference(layout.windows, account, now_ms)):
            wrong.append(account.entity)
    if wrong:
        raise AssertionError(f"{layout.name} on a cluster: {len(wrong)} lookups differ from the reference, "
                             f"e.g. {wrong[0]!r}")
    per_master = [cast(int, master.dbsize()) for master in masters]
    return {
        "layout": layout.name,
        "masters": len(masters),
        "accounts_with_events": len(accounts),
        "active_accounts": len(active),
        "keys": sum(per_master),
        "keys_per_master": per_master,
        "used_memory_bytes": used,
        "bytes_per_active_account": round(used / len(active), 1),
        "memory_usage_per_account": round(sum(usage) / len(usage), 1),
        "write_seconds": round(write_s, 2),
        "lookups_checked": len(picked),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=20_000, help="accounts of the finserve profile")
    parser.add_argument("--busy-accounts", type=int, default=1_000, help="accounts of the busy profile")
    parser.add_argument("--sample", type=int, default=1_000, help="lookups measured per layout")
    parser.add_argument("--repeat", type=int, default=9, help="decode passes over the sampled replies (CPU timing)")
    parser.add_argument("--replay", type=int, default=100,
                        help="accounts whose events are also written one by one through the pane script")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--layouts", default=",".join(kind.name for kind in LAYOUTS),
                        help="comma-separated layouts to measure")
    parser.add_argument("--cluster-masters", type=int, default=0,
                        help="also write e-job-panes into a Redis Cluster of this many masters (0: not)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "onlinestore-layout.json")
    args = parser.parse_args()
    machine = machine_facts()
    with tempfile.TemporaryDirectory(prefix="sg-layout-") as tmp:
        plan = replace(window_plan(Path(tmp)), project="finserve")
        assert tuple(a.function for a in plan.aggregations) == FUNCTIONS, plan.aggregations
        windows = [Window(w, WindowShape(w.length_ms, w.slide_ms), i) for i, w in enumerate(plan.windows)]
        history_ms = max(w.expiry_ms for w in plan.windows)
        now_ms = int(time.time() * 1000)
        results: dict[str, list[dict[str, Any]]] = {}
        with private_redis(Path(tmp) / "redis", "--maxmemory-policy", "noeviction") as client:
            server = cast(dict[str, Any], client.info("server"))
            config = cast(dict[str, str], client.config_get("hash-max-listpack-*"))
            for profile, count in (("finserve", args.accounts), ("busy", args.busy_accounts)):
                accounts = activity(profile, count, now_ms, history_ms, args.seed)
                results[profile] = []
                for kind in (k for k in LAYOUTS if k.name in args.layouts.split(",")):
                    row = measure(client, kind(plan, windows), accounts, now_ms, args.sample, args.repeat, args.replay)
                    results[profile].append(row)
                    print(f"{profile:<9}{row['layout']:<15}{row['bytes_per_active_account']:>9.0f} B/used"
                          f"{row['memory_usage_per_account']:>8.0f} B/MEMORY{row['keys']:>9} keys "
                          f"{row['encoding']:<9}{row['lookup_commands']:>3} cmd{row['lookup_reply_bytes']:>7.0f} B"
                          f"{row['lookup_redis_usec']:>7.1f} us redis{row['lookup_decode_usec']:>7.1f} us decode",
                          flush=True)
        on_cluster: dict[str, dict[str, Any]] = {}
        if args.cluster_masters:
            with private_redis_cluster(Path(tmp) / "cluster", masters=args.cluster_masters, replicas=0) as cluster:
                cluster_client = cluster.client()
                masters = [cluster.node(port) for port in cluster.ports]
                for profile, count in (("finserve", args.accounts), ("busy", args.busy_accounts)):
                    accounts = activity(profile, count, now_ms, history_ms, args.seed)
                    row = measure_cluster(cluster_client, masters, JobPanes(plan, windows), accounts, now_ms,
                                          args.sample)
                    on_cluster[profile] = row
                    print(f"{profile:<9}{row['layout'] + ' cluster':<23}{row['bytes_per_active_account']:>9.0f} B/used"
                          f"{row['memory_usage_per_account']:>8.0f} B/MEMORY{row['keys']:>9} keys "
                          f"{row['keys_per_master']} per master", flush=True)
                for master in masters:
                    master.close()
                cluster_client.close()
    report = {
        "benchmark": "onlinestore-layout",
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine,
        "redis_version": server["redis_version"],
        "redis_config": config,
        "windows": [{"window": w.suffix, "length_s": w.length_ms // 1000, "slide_s": w.slide_ms // 1000,
                     "key_expiry_s": w.expiry_ms // 1000} for w in plan.windows],
        "aggregations": list(FUNCTIONS),
        "history_s": history_ms // 1000,
        "arguments": {k: str(v) for k, v in vars(args).items()},
        "profiles": {"finserve": "events Poisson, one per 600 s per account on average (FinServe: 10/s over 6,000 "
                                 "accounts)", "busy": "one event in every 15 s pane"},
        "note": "bytes_per_active_account: growth of used_memory divided by the accounts with an event in the last "
                "hour (what maxmemory counts, keyspace and expiry entries included); memory_usage_per_account: "
                "MEMORY USAGE summed over an account's keys, mean over up to 1000 sampled accounts; lookup_*: one "
                "account's 9 values as of now (one pipeline = one round trip), reply bytes as RESP2 on the wire, "
                "Redis time from commandstats, decode: Python CPU time to turn the reply into the 9 values per lookup "
                "(the best and the median of --repeat passes over the sampled replies: the machine is shared); every "
                "sampled lookup equals the reference",
        "results": results,
        "cluster": on_cluster,
        "load_average_at_end": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
