"""Point-in-time training sets from the generated Feast repository equal an independent computation
from the raw transactions, and nothing from after a label's time leaks in (TTL edges included). Window
features follow the time rule (docs/semantics.md, "The time rule"): the window containing the label
time, over the events before it, so an event at exactly the label time is left out and the seconds before it count."""

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from streamguard.api.durations import parse_duration
from streamguard.api.featureview import FeatureViewSpec
from streamguard.devstack.endpoints import Endpoints
from streamguard.feastrepo.registration import feature_store, register
from streamguard.feastrepo.training import training_set
from streamguard.windows import WindowShape
from tests.workloads.materialize.conftest import OfflineData
from tests.workloads.materialize.support import feast_store, upload_by_day, with_project

DAY = pd.Timedelta(days=1)
US = pd.Timedelta(microseconds=1)


def _customer_expected(
    tx: pd.DataFrame, first_snapshot: pd.Timestamp, last_snapshot: pd.Timestamp, ttl: pd.Timedelta, at: pd.Timestamp
) -> dict[str, float] | None:
    """The snapshot a PIT join must use for a label at ``at`` (None: expired or not yet known)."""
    snapshot = min(at.floor("D"), last_snapshot)
    if snapshot < first_snapshot or at - snapshot > ttl:
        return None
    w7 = tx[(tx.event_time >= snapshot - 7 * DAY) & (tx.event_time < snapshot)]
    w30 = tx[(tx.event_time >= snapshot - 30 * DAY) & (tx.event_time < snapshot)]
    return {
        "cust_txn_count_7d": len(w7),
        "cust_txn_count_30d": len(w30),
        "cust_amount_avg_30d": w30.amount.mean() if len(w30) else float("nan"),
    }


@pytest.mark.spark
def test_training_set_is_point_in_time_correct(
    offline: OfflineData, stack: Endpoints, project: str, tmp_path: Path
) -> None:
    views = with_project({n: v.spec for n, v in offline.manifests.feature_views.items()}, project)
    store = feast_store(tmp_path / "repo", project, views, stack.redis_url)
    check_point_in_time(store, offline, views)


@pytest.mark.spark
def test_training_set_from_the_operator_kept_registry_on_s3(
    offline: OfflineData, stack: Endpoints, project: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same check with the offline tables on the object store (hive-partitioned by day) and the views
    registered as the operator registers them, read back by a store that knows only the registry location."""
    for name, value in stack.object_store_env().items():
        monkeypatch.setenv(name, value)
    local = with_project({n: v.spec for n, v in offline.manifests.feature_views.items()}, project)
    views = {}
    for name, spec in local.items():
        if spec.source is None:
            continue
        path = upload_by_day(stack, spec.source.path, f"{project}/{name}", spec.source.timestamp_field)
        views[name] = spec.model_copy(update={"source": spec.source.model_copy(update={"path": path})})
    location = f"s3://{stack.s3_bucket}/{project}/registry.db"
    for name, spec in views.items():
        assert register(location, f"test/{name}", name, spec, tmp_path, "test")
    check_point_in_time(feature_store(location, project, tmp_path, namespace="test"), offline, views)


def check_point_in_time(store: Any, offline: OfflineData, views: dict[str, FeatureViewSpec]) -> None:
    tx = offline.transactions
    ttl = pd.Timedelta(parse_duration(views["customer-profile"].ttl))
    last_snapshot = tx.event_time.max().floor("D") + DAY

    picks = tx.sample(n=40, random_state=21)
    labels = [(c, a, t) for c, a, t in zip(picks.customer_id, picks.account_id, picks.event_time, strict=True)]
    customer = picks.customer_id.iloc[0]
    account = picks.account_id.iloc[0]
    first_snapshot = tx[tx.customer_id == customer].event_time.min().floor("D") + DAY
    labels += [
        (customer, account, first_snapshot + 3 * DAY),  # exactly at a snapshot: that snapshot is known
        (customer, account, first_snapshot + 3 * DAY - US),  # a microsecond before: the previous one
        (customer, account, first_snapshot - US),  # before the first snapshot: nothing known yet
        (customer, account, last_snapshot + ttl),  # the TTL edge: still valid
        (customer, account, last_snapshot + ttl + US),  # just past the TTL: expired
        (customer, account, last_snapshot + 30 * DAY),  # long expired
    ]
    entity_df = pd.DataFrame(labels, columns=["customer_id", "account_id", "event_timestamp"])
    features = [
        "customer-profile:cust_txn_count_7d",
        "customer-profile:cust_txn_count_30d",
        "customer-profile:cust_amount_avg_30d",
        "account-realtime:txn_count_1m",
        "account-realtime:txn_count_5m",
        "account-realtime:txn_count_1h",
        "account-realtime:amount_sum_1h",
        "account-realtime:amount_max_5m",
    ]
    result = training_set(store, entity_df, features)
    assert len(result) == len(entity_df)
    assert (result.event_timestamp.values == entity_df.event_timestamp.values).all()

    by_customer = dict(tuple(tx.groupby("customer_id")))
    by_account = dict(tuple(tx.groupby("account_id")))
    leaky_differs = 0
    at_label = 0
    for row in result.itertuples(index=False):
        mine = by_customer[row.customer_id]
        first = mine.event_time.min().floor("D") + DAY
        expected = _customer_expected(mine, first, last_snapshot, ttl, row.event_timestamp)
        if expected is None:
            assert pd.isna(row.cust_txn_count_7d) and pd.isna(row.cust_amount_avg_30d), row
        else:
            assert row.cust_txn_count_7d == expected["cust_txn_count_7d"], row
            assert row.cust_txn_count_30d == expected["cust_txn_count_30d"], row
            if np.isnan(expected["cust_amount_avg_30d"]):
                assert pd.isna(row.cust_amount_avg_30d)
            else:
                assert row.cust_amount_avg_30d == pytest.approx(expected["cust_amount_avg_30d"], rel=1e-9)
            leaky = ((mine.event_time > row.event_timestamp - 7 * DAY) & (mine.event_time <= row.event_timestamp)).sum()
            leaky_differs += int(leaky != expected["cust_txn_count_7d"])

        acct = by_account[row.account_id]
        acct_ms = acct.event_time.dt.floor("ms")
        at_ms = int(row.event_timestamp.value // 1_000_000)
        at = pd.Timestamp(at_ms, unit="ms", tz="UTC")
        for suffix, length, slide in (("1m", "1m", "15s"), ("5m", "5m", "1m"), ("1h", "1h", "5m")):
            shape = WindowShape.parse(length, slide)  # the time rule: the window containing t, events before t
            start = pd.Timestamp(shape.end_as_of(at_ms) - shape.length_ms, unit="ms", tz="UTC")
            inside = acct[(acct_ms >= start) & (acct_ms < at)]
            got = getattr(row, f"txn_count_{suffix}")
            if pd.isna(got):  # no row within the view's TTL: every window has long been empty
                assert len(inside) == 0, (row, suffix)
            else:
                assert got == len(inside), (row, suffix)
            if suffix == "1h" and not pd.isna(row.amount_sum_1h):
                assert row.amount_sum_1h == pytest.approx(inside.amount.sum(), rel=1e-12)
                assert (inside.event_time < row.event_timestamp).all()
        if (acct.event_time == row.event_timestamp).any() and not pd.isna(row.txn_count_1m):
            at_label += 1  # a label at an event's own time: that event is not in its features
    assert leaky_differs > 0, "labels should include cases where a leaky join would give another value"
    assert at_label > 0, "labels should include instants of the accounts' own events"
    edge = result.tail(6)
    assert edge.cust_txn_count_7d.isna().tolist() == [False, False, True, False, True, True]
