"""Pure logic: the catalog built from manifests, reference resolution, freshness assessment, cache."""

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streamguard.onlinestore.feast_layout import feature_field, timestamp_field
from streamguard.onlinestore.freshness import FreshnessRecord
from streamguard.onlinestore.pane_layout import combine
from streamguard.onlinestore.window_layout import StreamProgress
from streamguard.serving.cache import TTLCache
from streamguard.serving.catalog import ViewResource, WindowGroup, build_catalog
from streamguard.serving.errors import UnknownFeatureError
from streamguard.serving.health import Health, assess
from streamguard.serving.pane_read import PaneRead
from streamguard.serving.selection import Column, resolve
from streamguard.serving.sources import PLURALS, ClusterSource, FileSource, resources_from_documents
from tests.serving.support import WINDOW_VIEW, finserve_manifests, write_config


def _catalog(docs: list[dict[str, Any]]) -> Any:
    views, windows, problems = resources_from_documents(docs, "test")
    assert problems == []
    return build_catalog(views, windows)


def test_views_fields_and_windows_come_from_the_manifests() -> None:
    catalog = _catalog(finserve_manifests("p"))
    customer = catalog.views["customer-profile"]
    assert customer.project == "p"
    assert customer.join_keys == (("customer_id", "STRING"),)
    assert customer.ttl_seconds == 86400 and customer.sla_seconds == 3600
    assert customer.batch_fields[0] == timestamp_field("customer-profile")
    assert customer.batch_fields[1] == feature_field("customer-profile", "age")
    windows = catalog.views[WINDOW_VIEW]
    assert windows.batch_features == () and not windows.has_batch and windows.has_stream
    one = windows.windows["1m"]
    assert (one.shape.length_ms, one.shape.slide_ms) == (60_000, 15_000)
    assert one.offsets == (("count", 0), ("sum", 1), ("max", 2)) and one.slide_number == 1
    assert one.pane_prefix.startswith(b"sgp:p_default:customer-txn-windows:")
    assert windows.windows["5m"].slide_number == 2 and windows.windows["5m"].pane_prefix == one.pane_prefix
    assert one.empty == (0, 0.0, None)
    assert [cast(7) for cast in one.casts] == [7, 7.0, 7.0]
    assert catalog.feature_sets["fraud"][0] == "account-profile:account_age_days"


def test_undeclared_window_features_are_served_with_inferred_types() -> None:
    docs = finserve_manifests("p")
    docs[3]["spec"]["features"] = [{"name": "txn_count_1m", "dtype": "INT64"}]
    view = _catalog(docs).views[WINDOW_VIEW]
    assert view.feature_names[0] == "txn_count_1m"
    assert set(view.feature_names) == {
        f"{a}_{w}" for a in ("txn_count", "amount_sum", "amount_max") for w in ("1m", "5m")
    }
    assert view.slots["amount_max_5m"].dtype == "FLOAT64"


def test_conflicting_and_orphan_windows_are_reported() -> None:
    docs = finserve_manifests("p")
    clash = copy.deepcopy(docs[4])
    clash["metadata"]["name"] = "zz-other"
    clash["spec"]["windows"] = [{"length": "2m", "slide": "15s", "name": "1m"}]
    orphan = copy.deepcopy(docs[4])
    orphan["metadata"]["name"] = "orphan"
    orphan["spec"]["featureView"] = "missing-view"
    views, windows, _ = resources_from_documents([*docs, clash, orphan], "test")
    catalog = build_catalog(views, windows)
    assert any("zz-other" in p and "another" in p for p in catalog.problems)
    assert any("orphan" in p and "missing-view" in p for p in catalog.problems)
    assert catalog.views[WINDOW_VIEW].windows["1m"].shape.length_ms == 60_000


def test_invalid_documents_name_the_resource_and_field(tmp_path: Path) -> None:
    docs = finserve_manifests("p")
    docs[0]["spec"]["ttl"] = "one day"
    docs[1]["metadata"] = {}
    views, _, problems = resources_from_documents([{"kind": "List", "items": docs}], "f.yaml")
    assert len(views) == 2
    assert any("FeatureView customer-profile" in p and "spec.ttl" in p for p in problems)
    assert any("f.yaml[0].items[1]" in p and "metadata.name" in p for p in problems)
    with pytest.raises(ValueError, match=r"spec\.ttl"):
        FileSource(write_config(tmp_path / "bad.yaml", docs))


def test_status_gives_the_newest_event_time() -> None:
    docs = finserve_manifests("p")
    docs[0]["status"] = {"lastMaterializedAt": "2026-11-28T10:00:00Z", "freshnessSeconds": 600}
    view = _catalog(docs).views["customer-profile"]
    assert view.status_newest == datetime(2026, 11, 28, 9, 50, tzinfo=UTC).timestamp()


def test_resolve_names_the_unknown_part() -> None:
    catalog = _catalog(finserve_manifests("p"))
    selection = resolve(catalog, ["customer-profile:age", f"{WINDOW_VIEW}:txn_count_5m", "customer-profile:segment"])
    assert [v.name for v in selection.views] == ["customer-profile", WINDOW_VIEW]
    assert selection.needs_batch == (True, False)
    assert selection.groups == ((), ("5m",))
    assert selection.columns == (Column(0, None, 0), Column(1, "5m", 0), Column(0, None, 3))
    with pytest.raises(UnknownFeatureError, match="unknown FeatureView 'x'"):
        resolve(catalog, ["x:age"])
    with pytest.raises(UnknownFeatureError, match="has no feature 'agee'"):
        resolve(catalog, ["customer-profile:agee"])


def test_a_selection_builds_its_pane_reads_once_per_set_of_window_ends() -> None:
    catalog = _catalog(finserve_manifests("p"))
    selection = resolve(
        catalog, ["customer-profile:age", f"{WINDOW_VIEW}:txn_count_5m", f"{WINDOW_VIEW}:amount_sum_1m"]
    )
    groups = catalog.views[WINDOW_VIEW].windows
    at = 1_800_000_000_000 + 1_000  # 1 s after a minute's boundary
    (no_panes, (read,)) = selection.pane_reads.at(at)
    assert no_panes == [] and selection.pane_reads.at(at + 13_999)[1][0] is read
    assert read == PaneRead.of(groups["5m"].pane_prefix, [groups["5m"], groups["1m"]], at)
    assert read.ends == (("5m", at - 1_000 + 60_000), ("1m", at - 1_000 + 15_000))
    assert read.count == 5 + 4
    later = selection.pane_reads.at(at + 14_000)[1][0]  # the 1m window's next end: a new read
    assert later is not read and later.ends == (("5m", at - 1_000 + 60_000), ("1m", at - 1_000 + 30_000))


def test_a_pane_read_parses_its_panes_once_and_combines_each_window_from_its_own() -> None:
    catalog = _catalog(finserve_manifests("p"))
    selection = resolve(catalog, [f"{WINDOW_VIEW}:txn_count_5m", f"{WINDOW_VIEW}:amount_sum_1m"])
    ((read,),) = selection.pane_reads.at(1_800_000_000_000 + 1_000)
    five, one = read.groups[0][0], read.groups[1][0]
    one_panes: list[bytes | None] = [b"2,10.5,7.25", None, b"0,,", b"1,3,3"]
    nothing: list[bytes | None] = [None] * 5

    def expected(group: WindowGroup, panes: list[bytes | None]) -> tuple[object, ...]:
        combined = combine(group.offsets, group.width, [pane for pane in panes if pane is not None])
        return tuple(cast(value) for cast, value in zip(group.casts, combined, strict=True))

    assert read.decode(nothing + one_panes) == {"5m": None, "1m": expected(one, one_panes)}
    five_panes: list[bytes | None] = [b"1,,", None, None, b"4,2.5,", None]
    assert read.decode(five_panes + nothing[:4]) == {"5m": expected(five, five_panes), "1m": None}
    assert read.decode(five_panes + one_panes) == {"5m": expected(five, five_panes), "1m": expected(one, one_panes)}


def test_freshness_takes_the_newest_source_and_the_stalest_part() -> None:
    catalog = _catalog(finserve_manifests("p"))
    now = 10_000.0
    views = {
        v.view: v
        for v in assess(
            catalog,
            recorded={"customer-profile": now - 100, "account-profile": now - 5000},
            progress={WINDOW_VIEW: StreamProgress(progress_at_ms=int((now - 30) * 1000), lag=0)},
            newest_seen={"account-profile": now - 50},
        )
    }
    assert views["customer-profile"].age(now) == 100
    assert views["account-profile"].age(now) == 50  # a newer row read beats an old record
    assert views["merchant-profile"].age(now) is None
    assert "never materialized" in views["merchant-profile"].problems(now)[0]
    assert views[WINDOW_VIEW].age(now) == 30 and views[WINDOW_VIEW].source == "stream"
    reasons = Health(None, tuple(views.values())).reasons(now)
    assert reasons == ["FeatureView merchant-profile: never materialized (no freshness record and no rows read)"]


def test_freshness_record_round_trip() -> None:
    record = FreshnessRecord(1_000, 2_000, 3_000, 4)
    assert FreshnessRecord.parse(record.mapping()) == record
    assert FreshnessRecord.parse({}) is None


def test_cache_staleness_bound_and_size() -> None:
    cache = TTLCache(staleness_seconds=1.0, max_entries=2)
    cache.put("a", 1, now=100.0)
    assert cache.get("a", now=100.9) == (True, 1)
    assert cache.get("a", now=101.0) == (False, None)
    cache.put("a", 1, now=200.0)
    cache.put("b", 2, now=200.0)
    cache.put("c", 3, now=200.0)
    assert len(cache) == 2 and cache.get("a", now=200.0) == (False, None)
    assert not TTLCache(0).enabled
    with pytest.raises(ValueError):
        TTLCache(-1)


def test_cache_is_bounded_in_bytes_oldest_first() -> None:
    cache = TTLCache(staleness_seconds=10.0, max_bytes=1000)
    for index in range(5):
        cache.put(f"key-{index}", index, now=0.0, size=300)
    assert len(cache) == 3 and cache.size_bytes == 900
    assert cache.get("key-1", now=1.0) == (False, None) and cache.get("key-4", now=1.0) == (True, 4)
    cache.put("huge", "x", now=0.0, size=1001)
    assert cache.get("huge", now=1.0) == (False, None) and cache.size_bytes == 900
    cache.put("key-4", 4, now=0.0, size=100)  # replacing an entry frees its old size
    assert cache.size_bytes == 700
    assert cache.get("key-2", now=11.0) == (False, None) and cache.size_bytes == 400  # expiry frees it too
    cache.clear()
    assert cache.size_bytes == 0 and len(cache) == 0


SERVED = {"customer-profile", "account-profile", "merchant-profile", WINDOW_VIEW}


def test_an_absurd_view_is_reported_and_every_other_view_served() -> None:
    docs = finserve_manifests("p")
    docs[0]["spec"]["ttl"] = "9999999999d"  # used to overflow timedelta and take the whole catalog down
    docs[1]["spec"]["freshnessSla"] = "0s"
    views, windows, problems = resources_from_documents(docs, "namespace fraud")
    catalog = build_catalog(views, windows)
    assert set(catalog.views) == SERVED - {"customer-profile", "account-profile"}
    assert any("FeatureView customer-profile: spec.ttl" in p and "366 days" in p for p in problems), problems
    assert any("FeatureView account-profile: spec.freshnessSla" in p and "greater than 0" in p for p in problems)


def test_a_view_that_cannot_be_built_is_reported_and_every_other_view_served() -> None:
    views, windows, _ = resources_from_documents(finserve_manifests("p"), "test")
    # A spec no validator saw (an object stored under an older CRD): building it fails, the others do not.
    absurd = ViewResource("aa-absurd", views[0].spec.model_copy(update={"ttl": "9999999999d"}))
    catalog = build_catalog([absurd, *views], windows)
    assert set(catalog.views) == SERVED
    assert catalog.problems == (
        "FeatureView aa-absurd: cannot be served: ValueError: '9999999999d' is longer than the maximum of 366 days",
    )


def test_the_cluster_source_serves_the_rest_when_one_object_is_absurd() -> None:
    docs = finserve_manifests("p")
    docs[2]["spec"]["ttl"] = "9999999999d"
    source = ClusterSource("fraud")
    for kind in PLURALS:  # what the watch does after listing each kind
        source._replace(kind, [d for d in docs if d["kind"] == kind])
    catalog = source.current()
    assert catalog is not None
    assert set(catalog.views) == SERVED - {"merchant-profile"}
    assert [p for p in catalog.problems if "merchant-profile" in p and "spec.ttl" in p]


def test_window_features_of_a_multi_entity_view_are_not_served() -> None:
    docs = finserve_manifests("p")
    docs[3]["spec"]["entities"].append({"name": "merchant", "joinKey": "merchant_id"})
    docs[3]["spec"]["features"].append({"name": "pair_risk", "dtype": "FLOAT64"})
    docs[3]["spec"]["source"] = {"path": "/data/pairs.parquet"}
    catalog = _catalog(docs)
    view = catalog.views[WINDOW_VIEW]
    assert view.windows == {} and view.feature_names == ("pair_risk",) and view.batch_features == ("pair_risk",)
    (problem,) = catalog.problems
    assert problem.startswith(f"StreamingWindow {docs[4]['metadata']['name']}: spec.featureView {WINDOW_VIEW!r}")
    assert "(customer_id, merchant_id)" in problem and "not served" in problem
    with pytest.raises(UnknownFeatureError):
        resolve(catalog, [f"{WINDOW_VIEW}:txn_count_1m"])
