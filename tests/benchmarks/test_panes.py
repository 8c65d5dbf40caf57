"""Pane combination (benchmarks/onlinestore/panes.py) against the windows oracle of the streaming tests.

Random events per key, processed in random batches whose late rows are filtered with the previous batch's
watermark (Spark's rule, docs/semantics.md): every window open at the final watermark, read from panes,
equals the per-window oracle (``expected_windows`` with the same watermark per event), and serving's read
at ``t`` equals the time rule over the events before ``t``.
"""

from collections.abc import Sequence
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from benchmarks.onlinestore.panes import as_of, combine, fold
from streamguard.api.streamingwindow import AvroContract, KafkaSource, StreamingWindowSpec, Window
from streamguard.windows import WindowShape, aggregate
from tests.workloads.streaming.support import ONE_OF_EACH, RANDOM_EVENTS, expected_windows

SECOND = 1000
FUNCTIONS = [a.function for a in ONE_OF_EACH]
SHAPES = {"w0": WindowShape(4 * SECOND, SECOND), "w1": WindowShape(6 * SECOND, 3 * SECOND),
          "w2": WindowShape(2 * SECOND, 2 * SECOND)}
SPEC = StreamingWindowSpec(
    feature_view="v",
    source=KafkaSource(topic="t"),
    contract=AvroContract(schema='"string"'),  # type: ignore[call-arg]
    key_field="account_id",
    event_time_field="event_time",
    watermark="1s",
    windows=[Window(name=n, length=f"{s.length_ms}ms", slide=f"{s.slide_ms}ms") for n, s in SHAPES.items()],
    aggregations=ONE_OF_EACH,
)



def _values(amount: float | None) -> list[float | None]:
    return [None if a.field is None else amount for a in ONE_OF_EACH]


def _same(expected: Sequence[object], got: Sequence[object]) -> bool:
    for e, g in zip(expected, got, strict=True):
        if e is None or g is None:
            if e is not g:
                return False
        elif abs(float(e) - float(g)) > 1e-9 * max(1.0, abs(float(e))):  # type: ignore[arg-type]
            return False
    return True


@settings(max_examples=300, deadline=None)
@given(events=RANDOM_EVENTS, cuts=st.lists(st.integers(1, 6), min_size=1, max_size=20),
       delay=st.integers(0, 5 * SECOND))
@example(  # a straggler for a window the previous batch's watermark closed, counted in the later windows
    events=[("a", 10 * SECOND, 1.0), ("a", 2 * SECOND, 5.0), ("a", 2 * SECOND, 7.0)], cuts=[1, 1, 1], delay=SECOND)
def test_open_windows_from_panes_equal_the_oracle(
    events: list[tuple[str, int, float | None]], cuts: list[int], delay: int
) -> None:
    batches: list[list[tuple[str, int, float | None]]] = []
    rest = list(events)
    for size in cuts * (len(events) + 1):
        if not rest:
            break
        batches.append(rest[:size])
        rest = rest[size:]
    watermark_of: list[int | None] = []  # per event in processing order: the previous batch's watermark
    newest: int | None = None
    watermark: int | None = None
    for batch in batches:
        watermark_of.extend([watermark] * len(batch))
        newest = max([newest or -(10**9), *(ts for _, ts, _ in batch)])
        watermark = max(watermark or -(10**9), newest - delay)
    rows: list[dict[str, Any]] = [{"account_id": k, "event_time": ts, "amount": a, "wm": wm}
                                  for (k, ts, a), wm in zip(events, watermark_of, strict=True)]
    oracle = expected_windows(rows, SPEC, watermark_at=lambda e: e["wm"] if e["wm"] is not None else -(10**12))
    for suffix, shape in SHAPES.items():
        for key in ("a", "b"):
            panes = fold(shape, FUNCTIONS, [(r["event_time"], _values(r["amount"]), r["wm"])
                                            for r in rows if r["account_id"] == key])
            for end in range(-SECOND, 30 * SECOND, shape.slide_ms):
                if watermark is not None and end <= watermark:
                    continue  # closed: never served
                want = oracle.get((key, suffix, end))
                expected = [want[a.name] for a in ONE_OF_EACH] if want else [aggregate(f, []) for f in FUNCTIONS]
                got = combine(shape, FUNCTIONS, panes, end)
                assert _same(expected, got), (key, suffix, end, expected, got)


@settings(max_examples=200, deadline=None)
@given(events=RANDOM_EVENTS, t=st.integers(0, 25 * SECOND))
def test_serving_read_from_panes_follows_the_time_rule(events: list[tuple[str, int, float | None]], t: int) -> None:
    arrived = [(k, ts, a) for k, ts, a in events if ts < t]  # at t the stream holds the events before t
    for shape in SHAPES.values():
        end = shape.end_as_of(t)
        for key in ("a", "b"):
            panes = fold(shape, FUNCTIONS, [(ts, _values(a), None) for k, ts, a in arrived if k == key])
            amounts = [a for k, ts, a in arrived if k == key and end - shape.length_ms <= ts < t]
            expected = [aggregate(x.function, amounts if x.field else [1] * len(amounts)) for x in ONE_OF_EACH]
            assert _same(expected, as_of(shape, FUNCTIONS, panes, t))
