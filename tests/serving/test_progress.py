"""Pure logic: the freshness rule over the stream progress record, the window statuses it gives, the
readiness policy and the health it reports."""

from typing import Any

import pytest

from streamguard.onlinestore.window_layout import PROGRESS_FIELDS, StreamProgress
from streamguard.serving.catalog import build_catalog
from streamguard.serving.health import Health, ReadinessPolicy, assess
from streamguard.serving.lookup import EXPIRED, NOT_FOUND, PARTIAL, PRESENT, STALE, window_rule
from streamguard.serving.progress import complete_until, judge, parse_progress
from streamguard.serving.sources import resources_from_documents
from tests.serving.support import WINDOW_VIEW, finserve_manifests

NOW = 1_800_000_000.0
SLA = 60.0


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
    fresh = window_rule(view, group, _record(2), NOW)
    assert (fresh.status, fresh.missing_status, fresh.missing_empty, fresh.withhold) == (PRESENT, PRESENT, True, False)
    assert fresh.stamp is not None and fresh.stamp.endswith("Z")
    stale = window_rule(view, group, _record(120), NOW)
    assert (stale.status, stale.missing_status, stale.missing_empty, stale.withhold) == (STALE, STALE, False, False)
    never = window_rule(view, group, _record(None), NOW)
    assert (never.status, never.missing_status, never.missing_empty, never.stamp) == (STALE, STALE, False, None)
    nothing = window_rule(view, group, None, NOW)
    assert (nothing.status, nothing.missing_status, nothing.missing_empty) == (STALE, NOT_FOUND, False)
    expired = window_rule(view, group, _record(11 * 60), NOW)
    assert (expired.status, expired.missing_status, expired.withhold) == (EXPIRED, EXPIRED, True)
    # the job covers events from 2 minutes ago only: the 5m window is partial, a 1m window complete
    start = int(NOW * 1000) - 120_000
    partial = window_rule(view, group, _record(2, complete_from_ms=start), NOW)
    assert (partial.status, partial.missing_status, partial.missing_empty) == (PARTIAL, PARTIAL, True)
    assert window_rule(view, view.windows["1m"], _record(2, complete_from_ms=start), NOW).status == PRESENT
    # stale wins over partial
    assert window_rule(view, group, _record(120, complete_from_ms=start), NOW).status == STALE


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
