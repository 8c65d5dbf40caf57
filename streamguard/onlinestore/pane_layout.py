"""StreamGuard's Redis layout for the panes (tiles) of sliding-window features: the streaming job writes
them, serving combines the windows it reads from them.

One hash per (view, pane shape, entity): key ``sgp:<store project>:<view>:<state id>:{<tag>}<Feast entity key>:``,
the state id (:meth:`PaneShape.state_id`) a digest of what the stored panes mean, so panes of one shape never
mix with another's; ``{<tag>}`` the hash tag of the entity's Feast hash (``<Feast entity key><store project>``,
:func:`streamguard.onlinestore.slots.hash_tag_of`), so on a Redis Cluster an entity's panes and batch features
share a slot and a lookup reaches one master per entity. Field ``<slide number>:<pane start ms>`` (the slide
number is 1 + the index of the pane's slide among the shape's distinct slides, ascending); value the pane's
partial aggregates (:data:`PARTS`, in :meth:`PaneShape.partials` order) as ASCII decimals separated by ``,``, empty
for a null.

A pane of slide ``S`` covers ``[start, start + S)``, ``start`` a multiple of ``S``; the window of length ``W``
and slide ``S`` ending at ``end`` is exactly the panes starting at ``end - W``, ``end - W + S`` ... ``end - S``
(:func:`window_fields`), and :func:`combine` finishes their partials into the window's aggregates.
"""

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson

from streamguard.onlinestore.feast_layout import redis_key_of
from streamguard.onlinestore.slots import hash_tag_of
from streamguard.onlinestore.window_layout import decode_number, encode_number

PANE_PREFIX = b"sgp:"
PANE_KEY_END = b":"
"""Ends every pane key. A key ending in the entity's bytes would match the ACL pattern another tenant has for
Feast's hashes (``*_<namespace tag>``, :mod:`streamguard.onlinestore.tenancy`) whenever the entity ends so."""
STATE_LAYOUT = "panes/3"
"""``panes/1`` keys had no :data:`PANE_KEY_END`, ``panes/2`` keys no hash tag: a job begun with them starts its
windows query anew, so the hash under the new key is filled from the topic, whole (``offsets.replace_stale_state``)."""
PARTS = {"count": ("n",), "sum": ("s",), "avg": ("s", "n"), "min": ("m",), "max": ("m",)}
"""The partial aggregates of each aggregation: ``n`` a count (of rows, or of non-null values for avg), ``s`` a sum
of non-null values (null when none), ``m`` a min or max (null when none)."""

Number = int | float | None


@dataclass(frozen=True)
class PaneAggregation:
    name: str
    function: str
    field: str | None
    """The event field aggregated (``None`` for count)."""
    integral: bool = True
    """The aggregate is a whole number: a count, or the sum, min or max of an ``int`` or ``long`` field."""


@dataclass(frozen=True)
class PaneShape:
    """What the meaning of the stored panes depends on (and the streaming job's state rows with them)."""

    key_field: str
    join_key_type: str
    event_time_field: str
    slides: tuple[tuple[int, int], ...]
    """``(slide ms, longest window ms of that slide)``, slides ascending."""
    aggregations: tuple[PaneAggregation, ...]

    def partials(self) -> list[tuple[str, PaneAggregation, str]]:
        """``(column, aggregation, part)`` of every partial, in the order a pane's value holds them."""
        return [(f"{agg.name}__{part}", agg, part) for agg in self.aggregations for part in PARTS[agg.function]]

    def state(self) -> dict[str, Any]:
        """The shape as JSON: a job whose shape differs from its checkpoint's cannot resume that checkpoint."""
        return {
            "layout": STATE_LAYOUT,
            "key": [self.key_field, self.join_key_type],
            "event_time": self.event_time_field,
            "slides": [[slide, longest] for slide, longest in self.slides],
            "partials": [[name, agg.function, agg.field] for name, agg, _ in self.partials()],
        }

    def state_id(self) -> str:
        """A short digest of :meth:`state`."""
        text = json.dumps(self.state(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def slide_number(self, slide_ms: int) -> int:
        return [slide for slide, _ in self.slides].index(slide_ms) + 1

    @property
    def width(self) -> int:
        """How many partials a pane's value holds."""
        return sum(len(PARTS[agg.function]) for agg in self.aggregations)

    def offsets(self) -> tuple[tuple[str, int], ...]:
        """Per aggregation, its function and the index of its first partial in a pane's value."""
        out, at = [], 0
        for agg in self.aggregations:
            out.append((agg.function, at))
            at += len(PARTS[agg.function])
        return tuple(out)


def shape_of(key_field: str, join_key_type: str, event_time_field: str, windows: Iterable[tuple[int, int]],
             aggregations: Iterable[PaneAggregation]) -> PaneShape:
    """The shape of a StreamingWindow's panes from its ``(length ms, slide ms)`` windows."""
    longest: dict[int, int] = {}
    for length, slide in windows:
        longest[slide] = max(length, longest.get(slide, 0))
    return PaneShape(key_field, join_key_type, event_time_field, tuple(sorted(longest.items())), tuple(aggregations))


def pane_prefix(project: str, view: str, state_id: str) -> bytes:
    """``sgp:<store project>:<view>:<state id>:``, the Feast entity key follows."""
    return PANE_PREFIX + f"{project}:{view}:{state_id}:".encode()


def pane_key(prefix: bytes, entity: bytes) -> bytes:
    """The pane hash of the serialized Feast entity key ``entity`` under :func:`pane_prefix` ``prefix``, in the slot
    of the entity's Feast hash (the store project is the prefix's text up to its second ``:``)."""
    project = prefix[len(PANE_PREFIX) : prefix.index(b":", len(PANE_PREFIX))]
    return prefix + hash_tag_of(redis_key_of(entity, project)) + entity + PANE_KEY_END


def pane_field(number: int, start_ms: int) -> bytes:
    return b"%d:%d" % (number, start_ms)


def encode_pane(partials: Iterable[Number]) -> bytes:
    """A pane's stored value: its partials as ASCII decimals separated by ``,``, empty for a null."""
    return b",".join(encode_number(p) or b"" for p in partials)


def window_fields(number: int, length_ms: int, slide_ms: int, end_ms: int) -> list[bytes]:
    """The fields of the panes the window ending at ``end_ms`` spans, oldest first."""
    return [pane_field(number, start) for start in range(end_ms - length_ms, end_ms, slide_ms)]


def partials(panes: Sequence[bytes | None], width: int) -> list[Number]:
    """Every partial of ``panes`` (stored values of ``width`` partials each; ``None``, a pane not stored, reads as
    ``width`` nulls), pane after pane: ints, floats, ``None`` for a null. Parsed as one JSON array (the encoding is
    JSON's numbers with nulls left empty); a value JSON has no number for (``inf``, ``nan``) takes the slower path
    of one ``int`` or ``float`` per partial."""
    if None in panes:
        blank = b"," * (width - 1)
        joined = b",".join([blank if pane is None else pane for pane in panes])
    else:
        joined = b",".join(cast(Sequence[bytes], panes))
    text = b"[" + joined + b"]"
    if b",," in text:
        text = text.replace(b",,", b",null,").replace(b",,", b",null,")
    text = text.replace(b"[,", b"[null,").replace(b",]", b",null]")
    try:
        out: list[Number] = orjson.loads(text)
    except orjson.JSONDecodeError:
        out = []
    if len(out) == width * len(panes):
        return out
    return [decode_number(part or None) for part in joined.split(b",")]


def _present(column: list[Number]) -> list[int | float]:
    """``column`` without its nulls (itself when it has none: most columns)."""
    if None in column:
        return [value for value in column if value is not None]
    return cast(list[int | float], column)


def finish(offsets: Sequence[tuple[str, int]], width: int, parts: list[Number]) -> list[Number]:
    """The window's aggregates from the :func:`partials` of its panes: count and sum are 0 when no pane holds a
    value, avg, min and max null. Sums are added in pane order, as the job's script did; ints stay ints (the sum,
    min or max of an integral field), for the caller to cast to the feature's type."""
    out: list[Number] = []
    for function, at in offsets:
        values = _present(parts[at::width])
        if function == "count" or function == "sum":
            out.append(sum(values))
        elif function == "avg":
            count = sum(_present(parts[at + 1 :: width]))
            out.append(sum(values) / count if values and count else None)
        elif function == "min":
            out.append(min(values) if values else None)
        else:
            out.append(max(values) if values else None)
    return out


def combine(offsets: Sequence[tuple[str, int]], width: int, panes: Sequence[bytes]) -> tuple[Number, ...]:
    """The window's aggregates (:func:`finish`) from the stored values of its panes (at least one)."""
    return tuple(finish(offsets, width, partials(panes, width)))
