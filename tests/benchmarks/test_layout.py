"""The layout study's layouts on a private redis-server: every lookup equals the reference values, the
packed pane hash's write script leaves exactly the state the benchmark measures, and it refuses panes no
readable window contains."""

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from benchmarks.onlinestore.layout import (
    LAYOUTS,
    PANE,
    PANE_ID,
    WRITE_PANE,
    Window,
    activity,
    measure,
)
from benchmarks.onlinestore.run import window_plan
from streamguard.devstack.private_redis import private_redis
from streamguard.windows import WindowShape
from streamguard.workloads.streaming.plan import StreamPlan


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    with private_redis(tmp_path_factory.mktemp("redis")) as client:
        yield client


def _windows(tmp_path: Path) -> tuple[StreamPlan, list[Window]]:
    plan = window_plan(tmp_path)
    return plan, [Window(w, WindowShape(w.length_ms, w.slide_ms), i) for i, w in enumerate(plan.windows)]


@pytest.mark.parametrize("profile", ["finserve", "busy"])
def test_every_layout_reads_the_reference_values(client: redis.Redis, tmp_path: Path, profile: str) -> None:
    plan, windows = _windows(tmp_path)
    now = int(time.time() * 1000)
    accounts = activity(profile, 120 if profile == "finserve" else 12, now, 4_320_000, seed=3)
    rows = {}
    for kind in LAYOUTS:
        # measure() raises when a lookup differs from the reference or the script's state from the measured one
        rows[kind.name] = measure(client, kind(plan, windows), accounts, now, sample=60, repeat=1, replay=8)
    assert rows["d-pane-packed"]["writer_script_replays_checked"] == 8
    assert all(row["lookups_checked"] > 0 for row in rows.values())
    assert rows["d-pane-packed"]["memory_usage_per_account"] < rows["a-today"]["memory_usage_per_account"] / 5


def test_the_pane_script_keeps_the_newest_panes_and_refuses_older_ones(client: redis.Redis) -> None:
    client.flushall()
    script = client.register_script(WRITE_PANE)

    def write(number: int, count: int) -> None:
        script(keys=[b"k"], args=[0, number, 4, PANE_ID.pack(0, number), PANE.pack(count, 1.0, math.nan), 60_000])

    def numbers() -> dict[int, int]:
        return {PANE_ID.unpack(f)[1]: PANE.unpack(v)[0] for f, v in client.hgetall(b"k").items()}  # type: ignore[arg-type, union-attr]

    for number in (10, 11, 13):
        write(number, 1)
    assert numbers() == {10: 1, 11: 1, 13: 1}
    write(14, 1)  # pane 10 is in no window of 4 panes that contains pane 14
    assert numbers() == {11: 1, 13: 1, 14: 1}
    write(11, 2)  # a late event in a pane still readable: the whole pane value replaces the old one
    write(10, 5)  # a straggler for a pane no readable window contains: refused
    assert numbers() == {11: 2, 13: 1, 14: 1}
    ttl = client.pttl(b"k")
    assert isinstance(ttl, int) and 0 < ttl <= 60_000
