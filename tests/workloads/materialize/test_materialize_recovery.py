"""The materializer knows what the store holds: after a wipe or an eviction the next run backfills the
TTL's interval and the store equals a fresh full materialization; an out-of-memory store fails the run
loudly (``StoreFull``) and changes no value silently. Each test runs its own redis-server."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
import redis

from streamguard.api.featureview import FeatureViewSpec
from streamguard.devstack.private_redis import private_redis
from streamguard.finserve.resources import EXAMPLES_DIR, load_manifests
from streamguard.onlinestore.generation import (
    BATCH,
    CURRENT_GENERATION,
    EVERYTHING_MS,
    Coverage,
    covers,
    generation_key,
)
from streamguard.onlinestore.writers import read_coverage
from streamguard.workloads.materialize.errors import MaterializeError
from streamguard.workloads.materialize.run import materialize_incremental, plan_run
from streamguard.workloads.materialize.status import RunReport, render_status
from streamguard.workloads.materialize.watermark import FileWatermark
from tests.workloads.materialize.conftest import OfflineData
from tests.workloads.materialize.support import dump, keys_of, with_project

PROFILES = ("customer-profile", "account-profile", "merchant-profile")
T0 = datetime(2026, 8, 3, tzinfo=UTC)
MID = datetime(2026, 10, 27, 12, tzinfo=UTC)
END = datetime(2026, 11, 2, tzinfo=UTC)
TTL = timedelta(days=2)


@dataclass
class Recorded:
    """A real :class:`FileWatermark` that also keeps every report, to see ``Backfilling`` mid-run."""

    inner: FileWatermark
    reports: list[RunReport] = field(default_factory=list)

    def load(self) -> datetime | None:
        return self.inner.load()

    @property
    def generation(self) -> str | None:
        return self.inner.generation

    def record(self, report: RunReport) -> None:
        self.reports.append(report)
        self.inner.record(report)


def _spec(offline: OfflineData, name: str, project: str) -> FeatureViewSpec:
    return with_project({name: offline.manifests.feature_views[name].spec}, project)[name]


def _current(client: redis.Redis, project: str) -> str | None:
    reply = cast(bytes | None, client.eval(CURRENT_GENERATION, 1, generation_key(keys_of(project))))
    return reply.decode() if reply else None


def test_plan_backfills_the_ttl_only_when_the_generation_or_coverage_differs() -> None:
    spec = load_manifests(EXAMPLES_DIR).feature_views["account-profile"].spec
    incremental = plan_run(spec, END, MID, "g1", "g1", Coverage("g1", EVERYTHING_MS))
    assert (incremental.start, incremental.backfill) == (MID, None)
    first = plan_run(spec, END, None, None, "g1", None)
    assert (first.start, first.backfill, first.since_ms) == (T0, None, EVERYTHING_MS)
    for recorded, coverage in (("g0", Coverage("g1", 0)), ("g1", Coverage("g0", 0)), ("g1", None), (None, None)):
        plan = plan_run(spec, END, END, recorded, "g1", coverage)
        assert plan.start == END - TTL and plan.backfill and "g1" in plan.backfill
        assert plan.since_ms == int((END - TTL).timestamp() * 1000)
    lagging = plan_run(spec, END, MID, "g0", "g1", None)
    assert lagging.start == MID, "a watermark older than the TTL keeps its whole increment"
    by_hand = plan_run(spec, END, MID, "g0", "g1", None, start=END - timedelta(hours=1))
    assert by_hand.backfill is None and by_hand.since_ms == int((END - timedelta(hours=1)).timestamp() * 1000)


def test_flushall_then_the_next_run_refills_every_row_equal_to_a_fresh_materialization(
    offline: OfflineData, project: str, tmp_path: Path
) -> None:
    fresh_project = project + "fresh"
    views = {n: _spec(offline, n, project) for n in PROFILES}
    with private_redis(tmp_path / "redis") as client:
        marks = {n: Recorded(FileWatermark(tmp_path / f"{n}.json")) for n in views}
        for end in (MID, END):
            for name, spec in views.items():
                materialize_incremental(client, name, spec, marks[name], end=end)
        before = dump(client, project)
        first_generation = _current(client, project)
        assert before and first_generation and all(m.generation == first_generation for m in marks.values())

        client.flushall()
        assert _current(client, project) is None
        first_view = next(iter(views))
        for name, spec in views.items():
            marks[name].reports.clear()
            result = materialize_incremental(client, name, spec, marks[name], end=END)
            assert result.start == END - TTL
            assert [r.reason for r in marks[name].reports] == ["Backfilling", "Backfilled"]
            backfilling = marks[name].reports[0]
            assert not backfilling.ok
            # the first run after the flush started the new generation; the others found it not re-seeded
            assert backfilling.fresh_reason == ("StoreGenerationMissing" if name == first_view else "NotReseeded")
            assert f"FeatureView {name}: " in backfilling.fresh_message
            assert f"backfilling [{END - TTL:%Y-%m-%dT%H:%M:%SZ}" in backfilling.message
        generation = _current(client, project)
        assert generation and generation != first_generation
        assert all(m.load() == END and m.generation == generation for m in marks.values())
        refilled = dump(client, project)
        assert refilled == before, "every row is back, byte for byte"

        for name, spec in with_project(views, fresh_project).items():
            materialize_incremental(client, name, spec, FileWatermark(tmp_path / f"fresh-{name}.json"), end=END)
        assert dump(client, fresh_project) == refilled

        for name in views:
            coverage = read_coverage(client, keys_of(project), name, BATCH)
            assert coverage == Coverage(generation, int((END - TTL).timestamp() * 1000))
            assert covers(generation, coverage, int((END - TTL).timestamp() * 1000))
            assert not covers(generation, coverage, int((END - TTL).timestamp() * 1000) - 1)
            again = materialize_incremental(client, name, views[name], marks[name], end=END)
            assert again.start == END and again.rows_scanned == 0, "back to increments"


def test_an_eviction_makes_the_next_run_backfill(offline: OfflineData, project: str, tmp_path: Path) -> None:
    spec = _spec(offline, "account-profile", project)
    with private_redis(tmp_path / "redis", "--maxmemory-policy", "allkeys-lru") as client:
        mark = Recorded(FileWatermark(tmp_path / "wm.json"))
        materialize_incremental(client, "account-profile", spec, mark, end=END)
        before = dump(client, project)
        used = int(cast(dict[str, int], client.info("memory"))["used_memory"])
        client.config_set("maxmemory", used + 1_000_000)
        payload = b"x" * 1000
        for start in range(0, 4000, 500):
            pipe = client.pipeline(transaction=False)
            for key in range(start, start + 500):
                pipe.set(f"filler:{key}", payload)
            pipe.execute()
        assert int(cast(dict[str, int], client.info("stats"))["evicted_keys"]) > 0
        assert _current(client, project) is None, "any eviction ends the generation"

        client.config_set("maxmemory", 0)
        client.delete(*[f"filler:{key}" for key in range(4000)])
        mark.reports.clear()
        materialize_incremental(client, "account-profile", spec, mark, end=END)
        assert [r.reason for r in mark.reports] == ["Backfilling", "Backfilled"]
        assert mark.reports[0].fresh_reason == "StoreGenerationMissing"
        assert dump(client, project) == before


def test_a_full_store_fails_the_run_loudly_and_changes_no_value_silently(
    offline: OfflineData, project: str, tmp_path: Path
) -> None:
    reference = project + "ref"
    spec = _spec(offline, "account-profile", project)
    with private_redis(tmp_path / "redis", "--maxmemory-policy", "noeviction") as client:
        ref_spec = spec.model_copy(update={"project": reference})
        used = int(cast(dict[str, int], client.info("memory"))["used_memory"])
        materialize_incremental(client, "account-profile", ref_spec, FileWatermark(tmp_path / "ref.json"), end=END)
        expected = dump(client, reference)
        grown = int(cast(dict[str, int], client.info("memory"))["used_memory"]) - used
        mark = Recorded(FileWatermark(tmp_path / "wm.json"))
        materialize_incremental(client, "account-profile", spec, mark, end=MID)
        before = dump(client, project)
        used = int(cast(dict[str, int], client.info("memory"))["used_memory"])
        client.config_set("maxmemory", used + grown // 4)
        with pytest.raises(redis.exceptions.OutOfMemoryError):  # the store fills up (other views, tenants)
            for key in range(100_000):
                client.set(f"filler:{key}", b"x" * 1000)

        with pytest.raises(MaterializeError, match="OOM command not allowed") as failed:
            materialize_incremental(client, "account-profile", spec, mark, end=END)
        assert failed.value.reason == "StoreFull"
        assert mark.load() == MID, "the watermark did not move"
        report = mark.reports[-1]
        assert (report.ok, report.reason, report.fresh, report.fresh_reason) == (False, "StoreFull", False, "StoreFull")
        assert "maxmemory" in report.message and "redis://" not in report.message
        after = dump(client, project)
        assert before.keys() <= after.keys() <= expected.keys()
        assert all(after[key] in (before.get(key), expected[key]) for key in after), "only whole, newer rows"
        assert any(after[key] != expected[key] for key in after), "Redis refused some writes"

        client.config_set("maxmemory", 0)
        materialize_incremental(client, "account-profile", spec, mark, end=END)
        assert mark.load() == END and mark.reports[-1].reason == "Materialized"
        assert dump(client, project) == expected, "the retry completes the run"


def test_status_keeps_the_generation_with_the_watermark_on_failure() -> None:
    moment = datetime(2026, 11, 2, 1, tzinfo=UTC)
    ok = render_status("v", "ns", 1, RunReport(True, "Backfilled", "m", moment, END, 5, 0, True, generation="g2"), {})
    assert ok["status"]["onlineStoreGeneration"] == "g2" and ok["status"]["materializedUntil"] == "2026-11-02T00:00:00Z"
    previous = {"materializedUntil": "2026-11-01T00:00:00Z", "onlineStoreGeneration": "g1"}
    full = render_status("v", "ns", 1, RunReport(False, "StoreFull", "OOM", moment, fresh_reason="StoreFull"), previous)
    assert {k: full["status"][k] for k in previous} == previous
    reasons = {c["type"]: (c["status"], c["reason"]) for c in full["status"]["conditions"]}
    assert reasons == {"Materialized": ("False", "StoreFull"), "Fresh": ("False", "StoreFull")}
