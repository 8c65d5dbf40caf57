"""``streamguard workload produce``: the FinServe transaction producer."""

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click

from streamguard.jobspec import connections_from_env
from streamguard.workloads.producer.events import Emission, TrafficProfile, generate
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic, read_log, send_paced

DEFAULT_SCHEMA = Path("examples/finserve/contracts/transaction-v1.avsc")


def _require(value: str | None, name: str, env: str) -> str:
    if not value:
        raise click.UsageError(f"{name} is required (--{name.replace('_', '-')} or ${env})")
    return value


@click.command(name="produce")
@click.option("--topic", required=True, help="Kafka topic (created with --partitions if missing).")
@click.option("--schema", "schema_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=DEFAULT_SCHEMA, show_default=True, help="Avro contract the events are written with.")
@click.option("--subject", default=None,
              help="Registry subject: the consuming StreamingWindow's (default <namespace>.<topic>-value); "
              "without it, <topic>-value.")
@click.option("--bootstrap", default=None, help="Kafka bootstrap servers (default $STREAMGUARD_KAFKA_BOOTSTRAP).")
@click.option("--registry", default=None, help="Schema registry URL (default $STREAMGUARD_REGISTRY_URL).")
@click.option("--partitions", default=6, show_default=True, help="Partitions when creating the topic.")
@click.option("--rate", default=10.0, show_default=True, help="Baseline events per second.")
@click.option("--burst-every", default=60.0, show_default=True, help="Seconds between fraud bursts (0: none).")
@click.option("--burst-duration", default=5.0, show_default=True, help="Seconds a fraud burst lasts.")
@click.option("--burst-rate", default=100.0, show_default=True, help="Extra events per second during a burst.")
@click.option("--accounts", default=6000, show_default=True)
@click.option("--out-of-order", "out_of_order", default=0.0, show_default=True,
              help="Fraction of events sent out of order (event time up to --out-of-order-by behind).")
@click.option("--out-of-order-by", default=60.0, show_default=True, help="Max seconds an out-of-order event lags.")
@click.option("--late", default=0.0, show_default=True, help="Fraction of events sent late (--late-by behind).")
@click.option("--late-by", default=300.0, show_default=True, help="Seconds a late event lags (beyond the watermark).")
@click.option("--seed", default=None, type=int, help="Seed: the same seed and options give the same events.")
@click.option("--count", default=None, type=int, help="Stop after this many events.")
@click.option("--duration", default=None, type=float, help="Stop after this many seconds (default: run forever).")
@click.option("--start-time", "start_ms", default=None, type=int,
              help="Event time of the first event, ms since the epoch (default now).")
@click.option("--fast", is_flag=True, help="Send as fast as possible instead of at the event rate.")
@click.option("--event-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every event sent as a JSON line here (the deterministic event log).")
@click.option("--replay", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Send the events of this event log (in order, as fast as possible) instead of generating.")
def command(topic: str, schema_path: Path, subject: str | None, bootstrap: str | None, registry: str | None,
            partitions: int, rate: float, burst_every: float, burst_duration: float, burst_rate: float,
            accounts: int, out_of_order: float, out_of_order_by: float, late: float, late_by: float,
            seed: int | None, count: int | None, duration: float | None, start_ms: int | None, fast: bool,
            event_log: Path | None, replay: Path | None) -> None:
    """Produce FinServe transactions: a baseline rate with injected fraud bursts, keyed by account_id, in
    Confluent wire format through the schema registry. Out-of-order and late events on demand."""
    env = connections_from_env()
    bootstrap = _require(bootstrap or env.kafka_bootstrap, "bootstrap", "STREAMGUARD_KAFKA_BOOTSTRAP")
    registry = _require(registry or env.registry_url, "registry", "STREAMGUARD_REGISTRY_URL")
    try:
        profile = TrafficProfile(rate=rate, accounts=accounts, burst_every_s=burst_every,
                                 burst_duration_s=burst_duration, burst_rate=burst_rate,
                                 out_of_order_fraction=out_of_order, out_of_order_s=out_of_order_by,
                                 late_fraction=late, late_by_s=late_by)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    ensure_topic(bootstrap, topic, partitions, security=env.kafka_security)
    sender = TransactionSender(bootstrap, registry, topic, schema_path.read_text(), subject,
                               extra=env.kafka_security.confluent(), registry_security=env.registry_security)
    emissions: Iterator[Emission]
    if replay:
        emissions = (Emission(0, e) for e in read_log(replay))
        speed = 0.0
    else:
        start = start_ms if start_ms is not None else int(time.time() * 1000)
        if count is None and duration is None:
            duration = float("inf")
        emissions = generate(profile, seed if seed is not None else int(time.time()), start, count, duration)
        speed = 0.0 if fast else 1.0
    started = time.monotonic()
    sent = send_paced(sender, emissions, speed, event_log)
    elapsed = time.monotonic() - started
    click.echo(f"sent {sent} events to {topic} in {elapsed:.1f}s ({sent / max(elapsed, 1e-9):.0f}/s)", file=sys.stderr)
