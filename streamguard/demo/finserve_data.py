"""Deterministic FinServe sample data: customers, accounts, merchants and card transactions.

Seeded and vectorized (numpy): the scale-1 data set (5,000 customers, 6,000 accounts, 800 merchants,
about 540,000 transactions over 90 days) takes a few seconds. Skew that a fraud model has to see:
a few hot merchants (Zipf popularity), night-time and foreign transactions, and fraud bursts (a
compromised account firing many foreign, night-time, high-amount transactions within minutes).

Layout under the output directory (``raw/`` is what the batch job and the producer read)::

    raw/customers.parquet  raw/accounts.parquet  raw/merchants.parquet
    raw/transactions.parquet   (sorted by event_time; millisecond timestamps, UTC)
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DEFAULT_OUT = Path(".run/data/finserve")
DEFAULT_END = datetime(2026, 11, 1, tzinfo=UTC)
"""Data ends here (exclusive) unless told otherwise: fixed, so a seed always gives the same bytes."""
DAY_MS = 86_400_000

COUNTRIES = np.array(["US", "GB", "DE", "FR", "BR", "IN", "NG", "RU", "CN", "MX"])
CATEGORIES = np.array(["grocery", "fuel", "restaurant", "online", "travel", "electronics", "jewelry", "atm"])
CHANNELS = np.array(["CARD_PRESENT", "ECOMMERCE", "ATM"])
"""Symbols of the ``Channel`` enum of ``examples/finserve/contracts/transaction-v1.avsc``."""
CURRENCIES = np.array(["USD", "GBP", "EUR", "EUR", "BRL", "INR", "NGN", "RUB", "CNY", "MXN"])
"""Currency of each of ``COUNTRIES``."""
_CATEGORY_AMOUNT_MU = np.array([3.4, 3.7, 3.3, 3.8, 5.6, 5.0, 5.4, 4.5])
_RISKY_CATEGORIES = np.array([3, 5, 6, 7])


@dataclass(frozen=True)
class FinServeConfig:
    scale: float = 1.0
    days: int = 90
    seed: int = 7
    end: datetime = DEFAULT_END
    transactions_per_customer_day: float = 1.2

    @property
    def customers(self) -> int:
        return max(10, round(5000 * self.scale))

    @property
    def accounts(self) -> int:
        return max(12, round(6000 * self.scale))

    @property
    def merchants(self) -> int:
        return max(8, round(800 * self.scale))

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)


@dataclass(frozen=True)
class FinServeData:
    customers: pa.Table
    accounts: pa.Table
    merchants: pa.Table
    transactions: pa.Table


def _ids(prefix: str, count: int, width: int) -> np.ndarray:
    return np.array([f"{prefix}{i:0{width}d}" for i in range(count)])


def _time_of_day_ms(rng: np.random.Generator, count: int, night_share: float) -> np.ndarray:
    """Mostly daytime (around 14:00), ``night_share`` between 00:00 and 05:00."""
    day = np.clip(rng.normal(14.0, 3.5, count), 5.0, 23.999) * 3_600_000
    night = rng.uniform(0, 5 * 3_600_000, count)
    return np.where(rng.random(count) < night_share, night, day).astype(np.int64)


def generate(config: FinServeConfig) -> FinServeData:
    """Build the four tables in memory (no I/O)."""
    rng = np.random.default_rng(config.seed)
    n_cust, n_acct, n_merch = config.customers, config.accounts, config.merchants
    start_ms = int(config.start.timestamp() * 1000)

    customer_ids = _ids("C", n_cust, 6)
    home = rng.choice(len(COUNTRIES), n_cust, p=[0.7, 0.06, 0.05, 0.05, 0.03, 0.03, 0.02, 0.02, 0.02, 0.02])
    customers = pa.table(
        {
            "customer_id": customer_ids,
            "home_country": COUNTRIES[home],
            "segment": rng.choice(np.array(["mass", "affluent", "business"]), n_cust, p=[0.8, 0.15, 0.05]),
        }
    )

    owner = np.concatenate([np.arange(n_cust), rng.integers(0, n_cust, n_acct - n_cust)])
    account_ids = _ids("A", n_acct, 6)
    accounts = pa.table(
        {
            "account_id": account_ids,
            "customer_id": customer_ids[owner],
            "account_type": rng.choice(np.array(["debit", "credit"]), n_acct, p=[0.6, 0.4]),
        }
    )

    merchant_ids = _ids("M", n_merch, 5)
    category = rng.integers(0, len(CATEGORIES), n_merch)
    popularity = 1.0 / np.arange(1, n_merch + 1) ** 0.95
    popularity = rng.permutation(popularity)
    popularity /= popularity.sum()
    merchant_country = np.where(rng.random(n_merch) < 0.85, 0, rng.integers(1, len(COUNTRIES), n_merch))
    merchants = pa.table(
        {
            "merchant_id": merchant_ids,
            "category": CATEGORIES[category],
            "country": COUNTRIES[merchant_country],
        }
    )

    # Ordinary traffic: account activity is log-normal, merchants Zipf, amounts log-normal per category.
    n_tx = round(n_cust * config.days * config.transactions_per_customer_day)
    activity = rng.lognormal(0.0, 0.8, n_acct)
    activity /= activity.sum()
    acct = rng.choice(n_acct, n_tx, p=activity)
    merch = rng.choice(n_merch, n_tx, p=popularity)
    day = rng.integers(0, config.days, n_tx)
    ts = start_ms + day * DAY_MS + _time_of_day_ms(rng, n_tx, night_share=0.07)
    amount = rng.lognormal(_CATEGORY_AMOUNT_MU[category[merch]], 0.9)
    foreign = rng.random(n_tx) < 0.04
    country = np.where(
        foreign, (home[owner[acct]] + rng.integers(1, len(COUNTRIES), n_tx)) % len(COUNTRIES), home[owner[acct]]
    )
    hour = (ts % DAY_MS) // 3_600_000
    risk = 0.0008 + 0.004 * (hour < 5) + 0.006 * foreign + 0.003 * (amount > 500)
    fraud = rng.random(n_tx) < risk

    # Fraud bursts: a compromised account fires 5-20 risky transactions within ten minutes.
    n_bursts = max(2, round(60 * config.scale * config.days / 90))
    burst_acct = rng.choice(n_acct, n_bursts)
    burst_start = start_ms + rng.integers(0, config.days * DAY_MS - 600_000, n_bursts)
    burst_len = rng.integers(5, 21, n_bursts)
    b_acct = np.repeat(burst_acct, burst_len)
    b_ts = np.repeat(burst_start, burst_len) + rng.integers(0, 600_000, b_acct.size)
    risky_merchants = np.flatnonzero(np.isin(category, _RISKY_CATEGORIES))
    if risky_merchants.size == 0:
        risky_merchants = np.arange(n_merch)
    b_merch = rng.choice(risky_merchants, b_acct.size)
    b_amount = rng.lognormal(6.0, 0.7, b_acct.size)
    b_country = (home[owner[b_acct]] + rng.integers(1, len(COUNTRIES), b_acct.size)) % len(COUNTRIES)

    acct = np.concatenate([acct, b_acct])
    merch = np.concatenate([merch, b_merch])
    ts = np.concatenate([ts, b_ts])
    amount = np.round(np.concatenate([amount, b_amount]), 2)
    country = np.concatenate([country, b_country])
    fraud = np.concatenate([fraud, np.ones(b_acct.size, dtype=bool)])
    channel = np.where(category[merch] == 7, 2, np.where(category[merch] == 3, 1, 0))

    order = np.lexsort((acct, ts))
    acct, merch, ts, country, fraud, channel = (a[order] for a in (acct, merch, ts, country, fraud, channel))
    amount = amount[order]
    transactions = pa.table(
        {
            "transaction_id": _ids("T", ts.size, 9),
            "event_time": pa.array(ts, pa.timestamp("ms", tz="UTC")).cast(pa.timestamp("us", tz="UTC")),
            "customer_id": customer_ids[owner[acct]],
            "account_id": account_ids[acct],
            "merchant_id": merchant_ids[merch],
            "amount": amount,
            "currency": CURRENCIES[country],
            "country": COUNTRIES[country],
            "channel": CHANNELS[channel],
            "is_foreign": country != home[owner[acct]],
            "is_night": ((ts % DAY_MS) // 3_600_000) < 5,
            "is_fraud": fraud,
        }
    )
    return FinServeData(customers, accounts, merchants, transactions)


def write(data: FinServeData, out_dir: Path) -> dict[str, Path]:
    """Write the tables as Parquet under ``out_dir/raw``; return the paths by table name."""
    raw = out_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("customers", "accounts", "merchants", "transactions"):
        path = raw / f"{name}.parquet"
        pq.write_table(getattr(data, name), path, row_group_size=256_000)
        paths[name] = path
    return paths


def _parse_end(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command(name="generate")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Directory to write raw/*.parquet under.",
)
@click.option("--scale", type=float, default=1.0, show_default=True, help="Multiplies entities and transactions.")
@click.option("--days", type=click.IntRange(1, 3650), default=90, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--end",
    "end_text",
    default=DEFAULT_END.isoformat(),
    show_default=True,
    help="End of the data (exclusive, ISO 8601, UTC when no offset).",
)
def main(out_dir: Path, scale: float, days: int, seed: int, end_text: str) -> None:
    """Generate the FinServe sample data set as Parquet."""
    if scale <= 0:
        raise click.BadParameter("must be positive", param_hint="--scale")
    config = FinServeConfig(scale=scale, days=days, seed=seed, end=_parse_end(end_text))
    started = time.perf_counter()
    data = generate(config)
    paths = write(data, out_dir)
    click.echo(
        f"{data.transactions.num_rows:,} transactions, {data.customers.num_rows:,} customers, "
        f"{data.accounts.num_rows:,} accounts, {data.merchants.num_rows:,} merchants "
        f"({config.start:%Y-%m-%d} .. {config.end:%Y-%m-%d}) -> {paths['transactions'].parent} "
        f"in {time.perf_counter() - started:.1f}s"
    )
