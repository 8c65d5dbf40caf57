"""Pure logic: the freshness rule over the stream progress record, the window statuses it gives, the
readiness policy and the health it reports."""

from typing import Any

import pytest

from streamguard.onlinestore.generation import Coverage
from streamguard.onlinestore.window_layout import PROGRESS_FIELDS, StreamProgress
from streamguard.serving.catalog import build_catalog
from streamguard.serving.health import Health, ReadinessPolicy, assess
from streamguard.serving.progress import (
    EXPIRED,
    NOT_FOUND,
    PARTIAL,
    PRESENT,
    STALE,
    BatchRule,
    StoreView,
    batch_rule,
    complete_until,
    judge,
    parse_progress,
    window_rule,
)
from streamguard.serving.sources import resources_from_documents
from tests.serving.support import WINDOW_VIEW, finserve_manifests

NOW = 1_800_000_000.0
SLA = 60.0
COVERED = StoreView("g1", Coverage("g1", 0), Coverage("g1", 0))


def _ms(seconds_ago: float) -> int:
    return int((NOW - seconds_ago) * 1000)


def _record(
    progress_ago: float | None, lag: int | None = 0, newest_ago: float | None = None, **extra: Any
) -> StreamProgress:
    return StreamProgress(
        processed_at_ms=_ms(0.5),
        progress_at_ms=None if progress_ago is None else _ms(progress_ago),
        newest_event_ms=None if newest_ago is None else _ms(newest_ago),
        lag=lag,
        **extra,
    )


def test_caught_up_is_fresh() -> None:
    verdict = judge(_record(2, lag=0, newest_ago=3), SLA, NOW)
    assert verdict.fresh and verdict.reason == ""
    assert verdict.complete_until == pytest.approx(NOW - 2)


def test_quiet_topic_with_lag_zero_stays_fresh_however_old_its_newest_event() -> None:
    # no event for an hour, but the job keeps confirming it is caught up (idle, zero lag)
    assert judge(_record(1, lag=0, newest_ago=3600), SLA, NOW).fresh
    assert judge(_record(1, lag=0, newest_ago=None), SLA, NOW).fresh


def test_lagging_within_the_sla_is_fresh_beyond_it_is_not() -> None:
    assert judge(_record(5, lag=400, newest_ago=20), SLA, NOW).fresh
    behind = judge(_record(5, lag=400, newest_ago=90), SLA, NOW)
    assert not behind.fresh
    assert "lags 400 records" in behind.reason and "90s old" in behind.reason
    assert behind.complete_until == pytest.approx(NOW - 90)
    # lag unknown: as for a lag, the newest event decides
    assert not judge(_record(5, lag=None, newest_ago=None), SLA, NOW).fresh


def test_stalled_stream_is_not_fresh_though_alive() -> None:
    # missing topic: alive (processed_at half a second ago) but never caught up
    never = judge(_record(None, state="failing", reason="topic finserve.x does not exist"), SLA, NOW)
    assert not never.fresh and never.complete_until is None
    assert "never caught up" in never.reason and "topic finserve.x does not exist" in never.reason
    # caught up once, then stopped progressing
    stopped = judge(_record(61, lag=0, state="failing", reason="Kafka unreachable"), SLA, NOW)
    assert not stopped.fresh and "last caught up 61s ago" in stopped.reason
    assert "over its freshness SLA of 60s" in stopped.reason and "failing: Kafka unreachable" in stopped.reason
    assert "never ran" in judge(None, SLA, NOW).reason


def test_dead_lettering_stops_progress() -> None:
    # every record goes to the dead-letter topic: the job consumes (lag 0) but progress_at stays behind
    record = _record(
        300,
        lag=0,
        newest_ago=1,
        state="dead-lettering",
        reason="dead-lettered 97% of 1200 records: schema id 3 unknown",
    )
    verdict = judge(record, SLA, NOW)
    assert not verdict.fresh
    assert "dead-lettering: dead-lettered 97%" in verdict.reason


def test_progress_record_round_trip_and_unreadable() -> None:
    record = _record(1, lag=7, newest_ago=2, watermark_ms=5, batch_id=9, state="running", complete_from_ms=3)
    assert StreamProgress.parse(record.mapping()) == record
    assert StreamProgress.parse({}) is None
    assert b"progress_at_ms" not in StreamProgress(processed_at_ms=1, state="starting").mapping()  # unknowns unwritten
    raw = [record.mapping().get(name) for name in PROGRESS_FIELDS]
    assert parse_progress(raw) == record
    assert parse_progress([b"soon", *raw[1:]]) is None
    assert complete_until(None) is None


def _catalog() -> Any:
    views, windows, problems = resources_from_documents(finserve_manifests("p"), "test")
    assert problems == []
    return build_catalog(views, windows)


def test_window_statuses_follow_the_rule() -> None:
    view = _catalog().views[WINDOW_VIEW]  # SLA 1m, TTL 10m
    group = view.windows["5m"]
    fresh = window_rule(view, group, _record(2), COVERED, NOW)
    assert (fresh.status, fresh.missing_status, fresh.missing_empty, fresh.withhold) == (PRESENT, PRESENT, True, False)
    assert fresh.stamp is not None and fresh.stamp.endswith("Z")
    stale = window_rule(view, group, _record(120), COVERED, NOW)
    assert (stale.status, stale.missing_status, stale.missing_empty, stale.withhold) == (STALE, STALE, False, False)
    never = window_rule(view, group, _record(None), COVERED, NOW)
    assert (never.status, never.missing_status, never.missing_empty, never.stamp) == (STALE, STALE, False, None)
    nothing = window_rule(view, group, None, COVERED, NOW)
    assert (nothing.status, nothing.missing_status, nothing.missing_empty) == (STALE, NOT_FOUND, False)
    expired = window_rule(view, group, _record(11 * 60), COVERED, NOW)
    assert (expired.status, expired.missing_status, expired.withhold) == (EXPIRED, EXPIRED, True)
    # the job covers events from 2 minutes ago only: the 5m window is partial, a 1m window complete
    start = int(NOW * 1000) - 120_000
    partial = window_rule(view, group, _record(2, complete_from_ms=start), COVERED, NOW)
    assert (partial.status, partial.missing_status, partial.missing_empty) == (PARTIAL, PARTIAL, True)
    assert window_rule(view, view.windows["1m"], _record(2, complete_from_ms=start), COVERED, NOW).status == PRESENT
    # stale wins over partial
    assert window_rule(view, group, _record(120, complete_from_ms=start), COVERED, NOW).status == STALE


def test_readiness_policy_globs() -> None:
    default = ReadinessPolicy()
    assert default.requires("anything")
    policy = ReadinessPolicy(required=("*",), advisory=("customer-txn-*", "device"))
    assert policy.requires("customer-profile")
    assert not policy.requires("customer-txn-windows") and not policy.requires("device")
    only = ReadinessPolicy(required=("customer-profile", "merchant-*", "gone"))
    assert not only.requires("account-profile")
    assert only.unserved(["customer-profile", "merchant-profile"]) == ["gone"]
    assert ReadinessPolicy(required=()).unserved([]) == []


def test_health_splits_required_and_advisory_problems() -> None:
    catalog = _catalog()
    batch = {name: NOW - 10 for name in catalog.views if name != WINDOW_VIEW}
    stalled = {WINDOW_VIEW: _record(None, state="failing", reason="topic t does not exist")}
    required = Health(None, assess(catalog, batch, stalled, {}))
    assert required.reasons(NOW) == [
        f"FeatureView {WINDOW_VIEW}: stream never caught up (failing: topic t does not exist)"
    ]
    advisory_policy = ReadinessPolicy(advisory=(WINDOW_VIEW,))
    advisory = Health(None, assess(catalog, batch, stalled, {}, advisory_policy))
    assert advisory.reasons(NOW) == []
    assert advisory.advisories(NOW) == required.reasons(NOW)
    views = {v.view: v for v in advisory.views}
    assert not views[WINDOW_VIEW].fresh(NOW) and views[WINDOW_VIEW].age(NOW) is None
    assert not views[WINDOW_VIEW].required and views["customer-profile"].required
    caught_up = Health(None, assess(catalog, batch, {WINDOW_VIEW: _record(3)}, {}))
    assert caught_up.reasons(NOW) == [] and caught_up.advisories(NOW) == []
    unserved = Health(None, (), unserved=("gone",))
    assert unserved.reasons(NOW) == ["FeatureView gone: required by the readiness policy but not served"]


def test_window_values_outside_the_stores_coverage_are_stale_never_present() -> None:
    view = _catalog().views[WINDOW_VIEW]
    group = view.windows["5m"]  # starts between 5 and 6 minutes before NOW
    fresh = _record(2)

    def rule(store: StoreView) -> tuple[str, str, bool]:
        got = window_rule(view, group, fresh, store, NOW)
        return got.status, got.missing_status, got.missing_empty

    assert rule(COVERED) == (PRESENT, PRESENT, True)
    # flushed (no marker) or a restart/eviction since the marker: no current generation
    assert rule(StoreView(None, stream=Coverage("g1", 0))) == (STALE, STALE, False)
    # a new generation the job has not re-seeded yet
    assert rule(StoreView("g2", stream=Coverage("g1", 0))) == (STALE, STALE, False)
    assert rule(StoreView("g2")) == (STALE, STALE, False)
    # re-seeded from 2 minutes ago only: the 5m window lacks events before that, the 1m window does not
    since = int(NOW * 1000) - 120_000
    assert rule(StoreView("g2", stream=Coverage("g2", since))) == (STALE, STALE, False)
    short = window_rule(view, view.windows["1m"], fresh, StoreView("g2", stream=Coverage("g2", since)), NOW)
    assert (short.status, short.missing_status, short.missing_empty) == (PRESENT, PRESENT, True)
    # covered, but the server evicts: a stored window is what it says, an absent one proves nothing
    assert rule(StoreView("g1", stream=Coverage("g1", 0), evicting=True)) == (PRESENT, STALE, False)
    # partial stays partial for stored windows and turns stale for absent ones under eviction
    partial = window_rule(
        view, group, _record(2, complete_from_ms=since), StoreView("g1", stream=Coverage("g1", 0), evicting=True), NOW
    )
    assert (partial.status, partial.missing_status, partial.missing_empty) == (PARTIAL, STALE, False)
    # no progress record: an absent window is not_found only when covered
    assert window_rule(view, group, None, COVERED, NOW).missing_status == NOT_FOUND
    assert window_rule(view, group, None, StoreView(None), NOW).missing_status == STALE
    # expired wins (values withheld) whatever the coverage
    assert window_rule(view, group, _record(11 * 60), StoreView(None), NOW).status == EXPIRED


def test_batch_values_outside_the_stores_coverage_are_stale() -> None:
    view = _catalog().views["customer-profile"]  # TTL 1d
    day_ago = int((NOW - 86_400) * 1000)
    assert batch_rule(view, StoreView("g1", batch=Coverage("g1", 0)), NOW) == BatchRule(PRESENT, NOT_FOUND)
    assert batch_rule(view, StoreView("g1", batch=Coverage("g1", day_ago)), NOW) == BatchRule(PRESENT, NOT_FOUND)
    assert batch_rule(view, StoreView(None, batch=Coverage("g1", 0)), NOW) == BatchRule(STALE, STALE)
    assert batch_rule(view, StoreView("g2", batch=Coverage("g1", 0)), NOW) == BatchRule(STALE, STALE)
    # backfilled from an hour ago only: rows up to a day old may be missing
    assert batch_rule(view, StoreView("g1", batch=Coverage("g1", day_ago + 82_800_000)), NOW) == BatchRule(STALE, STALE)
    # the stream part's coverage says nothing about batch values
    assert batch_rule(view, StoreView("g1", stream=Coverage("g1", 0)), NOW) == BatchRule(STALE, STALE)
    evicting = StoreView("g1", batch=Coverage("g1", 0), evicting=True)
    assert batch_rule(view, evicting, NOW) == BatchRule(PRESENT, STALE)


def test_coverage_makes_a_view_not_fresh_with_the_verdicts_reason() -> None:
    catalog = _catalog()
    batch = {name: NOW - 10 for name in catalog.views if name != WINDOW_VIEW}
    progress = {WINDOW_VIEW: _record(3)}
    covered = {name: StoreView("g1", Coverage("g1", 0), Coverage("g1", 0)) for name in catalog.views}
    assert Health(None, assess(catalog, batch, progress, {}, stores=covered)).reasons(NOW) == []

    flushed = dict.fromkeys(catalog.views, StoreView(None))
    health = Health(None, assess(catalog, batch, progress, {}, ReadinessPolicy(advisory=("merchant-*",)), flushed))
    reasons = health.reasons(NOW)
    assert len(reasons) == 3 and all("StoreGenerationMissing" in r for r in reasons)
    assert (
        "FeatureView customer-profile: StoreGenerationMissing: the online store has no current generation" in reasons[1]
    )
    assert [a.split(":")[0] for a in health.advisories(NOW)] == ["FeatureView merchant-profile"]
    views = {v.view: v for v in health.views}
    assert {p: v.reason for p, v in views[WINDOW_VIEW].coverage(NOW).items()} == {"stream": "StoreGenerationMissing"}
    assert {p: v.reason for p, v in views["account-profile"].coverage(NOW).items()} == {
        "batch": "StoreGenerationMissing"
    }

    reseeding = {name: StoreView("g2", Coverage("g1", 0), Coverage("g1", 0)) for name in catalog.views}
    window = next(v for v in assess(catalog, batch, progress, {}, stores=reseeding) if v.view == WINDOW_VIEW)
    assert not window.fresh(NOW) and window.problems(NOW)[0].startswith("NotReseeded: the streaming job has not")

    since = int(NOW * 1000) - 120_000  # the 5m window needs more
    short = {name: StoreView("g1", Coverage("g1", 0), Coverage("g1", since)) for name in catalog.views}
    window = next(v for v in assess(catalog, batch, progress, {}, stores=short) if v.view == WINDOW_VIEW)
    assert window.coverage(NOW)["stream"].reason == "CoverageTooShort"
    assert not window.fresh(NOW)
