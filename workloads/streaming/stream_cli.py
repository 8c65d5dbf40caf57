"""``streamguard stream``: operating a StreamingWindow's streaming job (its dead letters)."""

from pathlib import Path

import click

from streamguard.jobspec import JOB_CONFIG_PATH
from streamguard.workloads.streaming.cli import load_job


@click.group(name="stream")
def command() -> None:
    """Operate a StreamingWindow's streaming job."""


@command.command(name="replay-dead-letters")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path(JOB_CONFIG_PATH), show_default=True,
              help="The job file of the StreamingWindow (in its pod: the default).")
@click.option("--allow-late", is_flag=True,
              help="Replay records that fall in windows the job's watermark has already closed: they count only "
                   "in the windows still open (the time rule). Without it such a replay is refused.")
@click.option("--skip-unknown", is_flag=True,
              help="Leave the records of ids the registry still does not know in the dead-letter topic for good, "
                   "and replay the rest (without it the replay is refused).")
@click.option("--margin", "margin_s", type=click.IntRange(min=0), default=60, show_default=True,
              help="Seconds past the job's watermark counted as closing already: the watermark moves on while "
                   "the replayed records wait for their batch.")
@click.option("--dry-run", is_flag=True, help="Say what would be replayed; send and commit nothing.")
def replay_dead_letters(config_path: Path, allow_late: bool, skip_unknown: bool, margin_s: int,
                        dry_run: bool) -> None:
    """Put the dead letters of writer schema ids the registry knows now back on the source topic.

    Reads <topic>.dlq from where the last replay stopped; records dead-lettered as `schema-id-unknown:<id>`
    whose id the registry now knows (and the contract reads) are produced again, in their original order, to
    their original partition with their original key, value and timestamp. The job reads them as it reads
    any record. Every other dead letter stays. A replay interrupted half-way never sends a record twice.
    Endpoints come from $STREAMGUARD_KAFKA_BOOTSTRAP, $STREAMGUARD_REGISTRY_URL and $STREAMGUARD_REDIS_URL.

    In a cluster: kubectl exec deploy/<streamingwindow>-stream -- streamguard stream replay-dead-letters
    """
    from confluent_kafka import KafkaException

    from streamguard.contracts.registry import RegistryError
    from streamguard.onlinestore.client import ERRORS, without_password
    from streamguard.workloads.streaming.offsets import TopicMissingError
    from streamguard.workloads.streaming.replay import ReplayRefusedError, replay

    plan, env = load_job(config_path)
    assert env.kafka_bootstrap and env.registry_url and env.redis_url
    try:
        report = replay(plan, env.kafka(), env.registry_url, env.redis_url, registry_security=env.registry_security,
                        allow_late=allow_late, skip_unknown=skip_unknown, margin_ms=margin_s * 1000, dry_run=dry_run)
    except ReplayRefusedError as error:
        raise click.ClickException(f"StreamingWindow {plan.ref}: replay refused, nothing sent: {error}") from error
    except (KafkaException, RegistryError, TopicMissingError) as error:
        raise click.ClickException(f"StreamingWindow {plan.ref}: {error}") from error
    except ERRORS as error:  # the job's watermark is read before anything is sent
        raise click.ClickException(f"StreamingWindow {plan.ref}: the online store {without_password(env.redis_url)} "
                                   f"did not answer, nothing sent: {error}") from error
    for line in report.lines():
        click.echo(line)
