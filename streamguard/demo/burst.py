"""``streamguard demo burst``: a fraud burst on one account, sent now, through the real producer path."""

import random
import time
from pathlib import Path
from typing import Any

from streamguard.devstack.endpoints import Endpoints

SCHEMA = Path(__file__).resolve().parents[2] / "examples" / "finserve" / "contracts" / "transaction-v1.avsc"


def burst_events(account: str, count: int, now_ms: int, seed: int) -> list[dict[str, Any]]:
    """``count`` fraud transactions of ``account`` stamped ``now_ms`` onwards (pure)."""
    from streamguard.workloads.producer.events import TrafficProfile, events

    template = events(TrafficProfile(), seed, now_ms, count)
    rng = random.Random(seed)
    burst = []
    for index, event in enumerate(template):
        amount = round(rng.uniform(200.0, 900.0), 2)
        burst.append({**event, "transaction_id": f"burst-{seed}-{index:04d}", "account_id": account,
                      "event_time": now_ms + index * 10, "is_fraud": True, "channel": "ECOMMERCE",
                      "amount": amount, "currency": "USD", "amount_usd": amount})
    return burst


def send_burst(endpoints: Endpoints, topic: str, subject: str, account: str, count: int = 20) -> list[dict[str, Any]]:
    from streamguard.workloads.producer.kafka import TransactionSender

    sender = TransactionSender(endpoints.kafka_bootstrap, endpoints.registry_url, topic, SCHEMA.read_text(), subject)
    burst = burst_events(account, count, int(time.time() * 1000), time.time_ns() % 1_000_000)
    for event in burst:
        sender.send(event)
    sender.flush(30)
    if sender.errors:
        raise RuntimeError(f"burst to {topic}: {sender.errors[0]}")
    return burst
