"""The pane script (``panes.WRITE_PANES``) on a real redis-server and a real Redis Cluster, against the per-window
oracle of the streaming tests.

Random events processed in random batches as Spark processes them (``job.paned``): a batch's late rows are
filtered per pane with the previous batch's watermark, each changed pane is handed over whole from the state, and
the state evicts panes no open window contains. Every window still open, combined from the stored panes as serving
combines it, equals the oracle (``expected_windows`` with the same watermark per event), no stored pane makes an
open window the oracle does not have, and the pane hash keeps only panes an open window contains.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streamguard.api.streamingwindow import Window
from streamguard.devstack.private_redis import private_redis, private_redis_cluster, private_redis_sentinel
from streamguard.jobspec import StreamJob, load
from streamguard.onlinestore.client import Store, connect
from streamguard.windows import aggregate
from streamguard.workloads.streaming.panes import KEY, NEVER, PANE, SLIDE, pane_key, partial_columns
from streamguard.workloads.streaming.plan import StreamPlan, build
from streamguard.workloads.streaming.sink import RedisSink
from tests.workloads.streaming.support import (
    ONE_OF_EACH,
    RANDOM_EVENTS,
    V1,
    expected_windows,
    mismatches,
    read_windows,
    view_spec,
    window_spec,
    write_job,
)

SECOND = 1000
SPEC = window_spec("t", V1, ONE_OF_EACH, watermark="1s")
SPEC.windows = [Window(name="w0", length="4s", slide="1s"), Window(name="w1", length="6s", slide="3s"),
                Window(name="w2", length="2s", slide="2s"), Window(name="w3", length="2s", slide="1s")]
NAMES = [a.name for a in ONE_OF_EACH]


@pytest.fixture(scope="module", params=["server", "cluster", "sentinel"])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A redis-server of the module's own, a Redis Cluster of 3 masters, then a master the writers' client finds
    through Redis Sentinels (``connect``)."""
    if request.param == "server":
        with private_redis(tmp_path_factory.mktemp("redis")) as server:
            yield server
    elif request.param == "cluster":
        with private_redis_cluster(tmp_path_factory.mktemp("redis-cluster"), masters=3, replicas=0) as cluster:
            yield cluster.client()
    else:
        with private_redis_sentinel(tmp_path_factory.mktemp("redis-sentinel"), replicas=0) as sentinels:
            store = connect(sentinels.url)
            yield store
            store.close()


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> StreamPlan:
    folder: Path = tmp_path_factory.mktemp("job")
    path = write_job(folder / "job.json", "ns", "sw", SPEC, view_spec(SPEC, "proj"), folder / "ck", 9999)
    return build(load(StreamJob, path))


def _partial(function: str, part: str, values: list[float | None]) -> float | int | None:
    if part == "n":
        return len(values) if function == "count" else sum(1 for v in values if v is not None)
    present = [v for v in values if v is not None]
    if not present:
        return None
    return sum(present) if part == "s" else aggregate(function, present)




@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=RANDOM_EVENTS, cuts=st.lists(st.integers(1, 6), min_size=1, max_size=20),
       delay=st.integers(0, 5 * SECOND))
@example(  # a straggler for a window the previous batch's watermark closed, counted in the later windows
    events=[("a", 10 * SECOND, 1.0), ("a", 2 * SECOND, 5.0), ("a", 2 * SECOND, 7.0)], cuts=[1, 1, 1], delay=SECOND)
@example(  # the last write's watermark is exactly the end of the 1 s pane at 0's longest window (4 s): pruned
    events=[("a", 0, 1.0), ("a", 4 * SECOND, 1.0), ("a", 5 * SECOND, 1.0)], cuts=[1], delay=0)
def test_windows_written_from_panes_equal_the_oracle(client: Store, plan: StreamPlan,
                                                      events: list[tuple[str, int, float | None]], cuts: list[int],
                                                      delay: int) -> None:
    client.flushall()
    sink = RedisSink(client, plan, entities=1)  # one call per entity: the calls of a batch see each other's panes
    columns = partial_columns(plan)
    state: dict[tuple[str, int, int], list[float | None]] = {}
    rows: list[dict[str, Any]] = []
    late = written_with = 0  # Spark's watermark is 0 before the first batch
    pruned_at: dict[str, int] = {}
    newest: int | None = None
    rest = list(events)
    for size in cuts * (len(events) + 1):
        if not rest:
            break
        batch, rest = rest[:size], rest[size:]
        changed = set()
        for key, ts, amount in batch:
            rows.append({"account_id": key, "event_time": ts, "amount": amount, "wm": late})
            for index, slide in enumerate(plan.slides):
                start = ts - ts % slide
                if start + plan.longest(slide) > late:
                    state.setdefault((key, index, start), []).append(amount)
                    changed.add((key, index, start))
        ordered = sorted(changed)
        frame: dict[str, list[Any]] = {KEY: [k for k, _, _ in ordered], SLIDE: [i for _, i, _ in ordered],
                                       PANE: [s for _, _, s in ordered]}
        for name, agg, part in columns:
            frame[name] = [_partial(agg.function, part, state[pane]) for pane in ordered]
        sink.write_panes(frame, late, NEVER)
        written_with = late
        pruned_at.update(dict.fromkeys(frame[KEY], late))
        newest = max([newest if newest is not None else -(10**12), *(ts for _, ts, _ in batch)])
        late = max(late, newest - delay)  # the watermark the next batch filters with
        state = {p: v for p, v in state.items() if p[2] + plan.longest(plan.slides[p[1]]) > late}

    oracle = expected_windows(rows, SPEC, watermark_at=lambda e: e["wm"])
    current = {key: values for key, values in oracle.items() if key[2] > written_with}
    assert not mismatches(current, read_windows(client, plan.project, SPEC, current), NAMES)
    for key in pruned_at:  # every open window a stored pane is in has an event the oracle counts
        for field in cast(list[bytes], client.hkeys(pane_key(plan, plan.entity_key(key)))):  # type: ignore[arg-type]
            number, start = (int(x) for x in field.split(b":"))
            for window in plan.windows:
                if window.slide_ms == plan.slides[number - 1]:
                    ends = range(start + window.slide_ms, start + window.length_ms + 1, window.slide_ms)
                    assert all((key, window.suffix, end) in oracle for end in ends if end > written_with), field
    for key, watermark in pruned_at.items():  # a write drops the panes only closed windows contain
        fields = cast(list[bytes], client.hkeys(pane_key(plan, plan.entity_key(key))))  # type: ignore[arg-type]
        for field in fields:
            index, start = (int(x) for x in field.split(b":"))
            assert start + plan.longest(plan.slides[index - 1]) > watermark, (key, field)


def test_windows_starting_before_the_floor_are_not_counted_as_written(client: Store, plan: StreamPlan) -> None:
    client.flushall()
    frame: dict[str, list[Any]] = {KEY: ["a"], SLIDE: [0], PANE: [10 * SECOND]}
    for name, agg, part in partial_columns(plan):
        frame[name] = [_partial(agg.function, part, [2.5])]
    written, missed = RedisSink(client, plan).write_panes(frame, NEVER, 8 * SECOND)
    assert written == 3 + 2, "w0 ending 12, 13, 14 s (the one ending at 11 s starts at 7 s) and w3 ending 11, 12 s"
    assert missed == 0
    assert client.hgetall(pane_key(plan, plan.entity_key("a"))) == {b"1:10000": b"1,2.5,2.5,1,2.5,2.5"}  # type: ignore[arg-type]


def test_windows_closed_when_a_pane_changes_are_counted_as_missed(client: Store, plan: StreamPlan) -> None:
    client.flushall()
    frame: dict[str, list[Any]] = {KEY: ["a", "b"], SLIDE: [0, 0], PANE: [10 * SECOND, 10 * SECOND]}
    for name, agg, part in partial_columns(plan):
        frame[name] = [_partial(agg.function, part, [1.0])] * 2
    written, missed = RedisSink(client, plan).write_panes(frame, 12 * SECOND, NEVER)
    assert (written, missed) == (2 * 2, 2 * 4), "per entity: w0 ends 13, 14 s written; w0 and w3 ending 11, 12 s closed"


def test_a_batch_of_many_entities_is_written_whole_a_call_per_slot_on_a_cluster(client: Store,
                                                                                 plan: StreamPlan) -> None:
    client.flushall()
    entities = [f"e{i}" for i in range(250)]
    frame: dict[str, list[Any]] = {KEY: entities, SLIDE: [0] * len(entities), PANE: [10 * SECOND] * len(entities)}
    for name, agg, part in partial_columns(plan):
        frame[name] = [_partial(agg.function, part, [float(i)]) for i in range(len(entities))]
    written, missed = RedisSink(client, plan).write_panes(frame, NEVER, NEVER)
    assert (written, missed) == (len(entities) * (4 + 2), 0), "per entity: w0 ending 11-14 s, w3 ending 11, 12 s"
    for i, entity in enumerate(entities):
        stored = client.hgetall(pane_key(plan, plan.entity_key(entity)))  # type: ignore[arg-type]
        assert stored == {b"1:10000": f"1,{i}.0,{i}.0,1,{i}.0,{i}.0".encode()}, entity
