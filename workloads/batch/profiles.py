"""FinServe batch features: daily snapshots of trailing 7/30/90-day aggregates per entity.

Every snapshot is taken at midnight UTC (``event_timestamp``) and covers the whole days before it: the
``Nd`` features of the snapshot at ``S`` aggregate the transactions with ``S - N days <= event_time < S``.
An entity gets a snapshot every day from the day after its first transaction to the day after the last
day of data. Counts are 0 and averages/ratios null when the trailing window holds no transaction.
"""

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F  # noqa: N812

TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class DistinctCount:
    """``name`` = distinct values of ``of`` over the trailing ``days``."""

    name: str
    of: str
    days: int


@dataclass(frozen=True)
class Profile:
    """One offline table: the daily sums it needs and how the features derive from trailing sums."""

    view: str
    key: str
    daily: dict[str, Callable[[], Column]]
    features: dict[str, Callable[[Callable[[str, int], Column]], Column]]
    distinct: tuple[DistinctCount, ...] = ()


def _ratio(numerator: Column, denominator: Column) -> Column:
    return F.when(denominator > 0, numerator / denominator)


def _daily_sums(flag: str) -> dict[str, Callable[[], Column]]:
    """Per entity and day: transactions ``n``, their ``amount`` and how many have ``is_<flag>`` set."""
    return {
        "n": lambda: F.count(F.lit(1)),
        "amount": lambda: F.sum("amount"),
        flag: lambda: F.sum(F.col(f"is_{flag}").cast("long")),
    }


PROFILES: tuple[Profile, ...] = (
    Profile(
        view="customer-profile",
        key="customer_id",
        daily=_daily_sums("foreign"),
        features={
            "cust_txn_count_7d": lambda t: t("n", 7),
            "cust_txn_count_30d": lambda t: t("n", 30),
            "cust_amount_avg_30d": lambda t: _ratio(t("amount", 30), t("n", 30)),
            "cust_foreign_ratio_30d": lambda t: _ratio(t("foreign", 30), t("n", 30)),
        },
        distinct=(DistinctCount("cust_distinct_merchants_90d", "merchant_id", 90),),
    ),
    Profile(
        view="account-profile",
        key="account_id",
        daily=_daily_sums("night"),
        features={
            "acct_txn_count_7d": lambda t: t("n", 7),
            "acct_amount_sum_30d": lambda t: t("amount", 30),
            "acct_amount_avg_90d": lambda t: _ratio(t("amount", 90), t("n", 90)),
            "acct_night_ratio_30d": lambda t: _ratio(t("night", 30), t("n", 30)),
        },
    ),
    Profile(
        view="merchant-profile",
        key="merchant_id",
        daily=_daily_sums("fraud"),
        features={
            "merch_txn_count_7d": lambda t: t("n", 7),
            "merch_amount_avg_30d": lambda t: _ratio(t("amount", 30), t("n", 30)),
            "merch_fraud_rate_90d": lambda t: _ratio(t("fraud", 90), t("n", 90)),
        },
        distinct=(DistinctCount("merch_distinct_customers_30d", "customer_id", 30),),
    ),
)


def table_name(view: str) -> str:
    """Folder of a view's offline table under ``<data>/offline``: ``customer-profile`` -> ``customer_profile``."""
    return view.replace("-", "_")


def _distinct_deltas(tx: DataFrame, key: str, count: DistinctCount) -> DataFrame:
    """+1/-1 per (key, snapshot date) as values enter/leave the trailing window (disjoint intervals)."""
    days = tx.select(key, count.of, F.to_date("event_time").alias("day")).distinct()
    following = Window.partitionBy(key, count.of).orderBy("day")
    spans = days.select(
        key,
        F.date_add("day", 1).alias("enter"),
        F.least(
            F.date_add("day", count.days + 1),
            F.coalesce(F.date_add(F.lead("day").over(following), 1), F.date_add("day", count.days + 1)),
        ).alias("leave"),
    )
    return (
        spans.select(key, F.col("enter").alias("snapshot"), F.lit(1).alias("d"))
        .unionByName(spans.select(key, F.col("leave").alias("snapshot"), F.lit(-1).alias("d")))
        .groupBy(key, "snapshot")
        .agg(F.sum("d").alias(f"_delta_{count.name}"))
    )


def compute_profile(transactions: DataFrame, profile: Profile) -> DataFrame:
    """The offline table of one profile view: ``key``, ``event_timestamp`` and the features."""
    key = profile.key
    tx = transactions
    last_snapshot = tx.select(F.date_add(F.max(F.to_date("event_time")), 1).alias("last"))
    grid = (
        tx.groupBy(key)
        .agg(F.min(F.to_date("event_time")).alias("first"))
        .crossJoin(last_snapshot)
        .select(key, F.explode(F.sequence(F.date_add("first", 1), F.col("last"))).alias("snapshot"))
    )
    daily = tx.groupBy(key, F.date_add(F.to_date("event_time"), 1).alias("snapshot")).agg(
        *[column().alias(name) for name, column in profile.daily.items()]
    )
    rows = grid.join(daily, [key, "snapshot"], "left").fillna(0, subset=list(profile.daily))
    for distinct in profile.distinct:
        rows = rows.join(_distinct_deltas(tx, key, distinct), [key, "snapshot"], "left")

    ordered = Window.partitionBy(key).orderBy("snapshot")

    def trailing(name: str, days: int) -> Column:
        return F.sum(name).over(ordered.rowsBetween(-(days - 1), 0))

    features = {name: build(trailing) for name, build in profile.features.items()}
    for distinct in profile.distinct:
        running = ordered.rowsBetween(Window.unboundedPreceding, 0)
        features[distinct.name] = F.sum(F.coalesce(F.col(f"_delta_{distinct.name}"), F.lit(0))).over(running)
    return rows.select(
        F.col(key),
        F.col("snapshot").cast("timestamp").alias(TIMESTAMP),
        *[column.alias(name) for name, column in features.items()],
    )
