"""The FinServe transaction stream as a pure, seeded generator.

Traffic is a baseline rate (10 TPS by default) plus periodic fraud bursts: a few compromised accounts fire
many small ``is_fraud`` transactions at many merchants within seconds. On demand some events are emitted
out of order (event time up to ``out_of_order_s`` behind the stream's clock) or late (``late_by_s`` behind,
beyond a 2-minute watermark). Same seed and profile, same events: the deterministic event log of tests.
"""

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

Event = dict[str, Any]
"""One transaction record with every field of the newest contract (v2); serializers keep what their
schema knows. ``event_time`` is milliseconds since the epoch."""

CURRENCIES = ("EUR", "EUR", "EUR", "USD", "GBP")
USD_RATE = {"EUR": 1.08, "USD": 1.0, "GBP": 1.27}
CHANNELS = ("CARD_PRESENT", "ECOMMERCE", "ECOMMERCE", "ATM", "TRANSFER")


@dataclass(frozen=True)
class TrafficProfile:
    rate: float = 10.0
    """Baseline events per second (of stream time)."""
    accounts: int = 6000
    customers: int = 5000
    merchants: int = 800
    account_prefix: str = "A"
    burst_every_s: float = 60.0
    """A fraud burst starts every this many seconds (0: no bursts)."""
    burst_duration_s: float = 5.0
    burst_rate: float = 100.0
    """Extra events per second during a burst."""
    burst_accounts: int = 3
    out_of_order_fraction: float = 0.0
    out_of_order_s: float = 60.0
    """Out-of-order events lag the stream clock by up to this (keep it under the watermark)."""
    late_fraction: float = 0.0
    late_by_s: float = 300.0
    """Late events lag the stream clock by exactly this (beyond the watermark: dropped from closed windows)."""

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"rate must be positive events/s (got {self.rate})")
        for name in ("out_of_order_fraction", "late_fraction"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be within 0..1 (got {value})")
        if self.accounts < 1 or self.customers < 1 or self.merchants < 1:
            raise ValueError("accounts, customers and merchants must be at least 1")


@dataclass(frozen=True)
class Emission:
    """An event and when to send it, in milliseconds after the generator's start."""

    send_offset_ms: int
    event: Event


def _account(profile: TrafficProfile, index: int) -> str:
    return f"{profile.account_prefix}{index:06d}"


def _record(
    rng: random.Random, profile: TrafficProfile, seq: int, seed: int, account: int, event_ms: int, fraud: bool
) -> Event:
    currency = rng.choice(CURRENCIES)
    if fraud:
        amount = round(rng.uniform(1.0, 40.0), 2)
        channel = "ECOMMERCE"
    else:
        amount = round(min(math.exp(rng.gauss(3.4, 1.1)), 25_000.0), 2)
        channel = rng.choice(CHANNELS)
    return {
        "transaction_id": f"t{seed}-{seq:09d}",
        "account_id": _account(profile, account),
        "customer_id": f"C{account % profile.customers:06d}",
        "merchant_id": f"M{rng.randrange(profile.merchants):05d}",
        "amount": amount,
        "currency": currency,
        "channel": channel,
        "event_time": event_ms,
        "is_fraud": fraud,
        "amount_usd": round(amount * USD_RATE[currency], 2),
    }


def generate(profile: TrafficProfile, seed: int, start_ms: int, count: int | None = None,
             duration_s: float | None = None) -> Iterator[Emission]:
    """Emissions in send order until ``count`` events or ``duration_s`` of stream time (one is required)."""
    if count is None and duration_s is None:
        raise ValueError("generate needs count or duration_s")
    rng = random.Random(seed)
    burst_victims: list[int] = []
    t = 0.0
    seq = 0
    while (count is None or seq < count) and (duration_s is None or t < duration_s):
        in_burst = profile.burst_every_s > 0 and (t % profile.burst_every_s) < profile.burst_duration_s
        total_rate = profile.rate + (profile.burst_rate if in_burst else 0.0)
        t += rng.expovariate(total_rate)
        fraud = in_burst and rng.random() < profile.burst_rate / total_rate
        if fraud:
            if not burst_victims:
                burst_victims = [rng.randrange(profile.accounts) for _ in range(profile.burst_accounts)]
            account = rng.choice(burst_victims)
        else:
            if not in_burst:
                burst_victims = []
            account = rng.randrange(profile.accounts)
        send_ms = int(t * 1000)
        lag_ms = 0
        roll = rng.random()
        if roll < profile.late_fraction:
            lag_ms = int(profile.late_by_s * 1000)
        elif roll < profile.late_fraction + profile.out_of_order_fraction:
            lag_ms = int(rng.uniform(0, profile.out_of_order_s) * 1000)
        yield Emission(send_ms, _record(rng, profile, seq, seed, account, start_ms + send_ms - lag_ms, fraud))
        seq += 1


def events(profile: TrafficProfile, seed: int, start_ms: int, count: int) -> list[Event]:
    """The first ``count`` events of :func:`generate`, in send order."""
    return [e.event for e in generate(profile, seed, start_ms, count=count)]
