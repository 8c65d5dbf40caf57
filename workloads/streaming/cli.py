"""``streamguard workload stream``: what a StreamingWindow's Deployment runs."""

import dataclasses
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from streamguard.jobspec import JOB_CONFIG_PATH, Connections, StreamJob, connections_from_env, load, metrics_port

if TYPE_CHECKING:
    from streamguard.workloads.streaming.plan import StreamPlan


@click.command(name="stream")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path(JOB_CONFIG_PATH), show_default=True, help="The job file the operator mounts.")
def command(config_path: Path) -> None:
    """Run a StreamingWindow's Spark Structured Streaming job: Kafka (Confluent Avro) -> sliding windows
    with a watermark -> Redis, with dead letters, checkpoints and Prometheus metrics.

    Endpoints come from $STREAMGUARD_KAFKA_BOOTSTRAP, $STREAMGUARD_REGISTRY_URL and $STREAMGUARD_REDIS_URL,
    Kafka and registry credentials from the $STREAMGUARD_KAFKA_* / $STREAMGUARD_REGISTRY_* security variables;
    connector jars from $STREAMGUARD_SPARK_JARS. $STREAMGUARD_PORT_METRICS overrides the job file's metrics
    port (for several jobs on one host outside Kubernetes).
    """
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    plan, env = load_job(config_path)
    from streamguard.workloads.streaming.runner import Endpoints, StreamRunner

    assert env.kafka_bootstrap and env.registry_url and env.redis_url
    plan = dataclasses.replace(plan, metrics_port=metrics_port(plan.metrics_port))
    runner = StreamRunner(plan, Endpoints(env.kafka(), env.registry_url, env.redis_url, env.registry_security))
    sys.exit(runner.run())


def load_job(config_path: Path) -> "tuple[StreamPlan, Connections]":
    """The job file's plan and the environment's endpoints, Kafka's, the registry's and the online store's all
    set; else a clear error naming the StreamingWindow (once its file is read) and what is missing."""
    from streamguard.workloads.streaming.plan import StreamSpecError, build

    try:
        plan = build(load(StreamJob, config_path))
    except (FileNotFoundError, ValueError, StreamSpecError) as error:
        raise click.ClickException(str(error)) from error
    try:
        env = connections_from_env()
    except ValueError as error:
        raise click.ClickException(f"StreamingWindow {plan.ref}: {error}") from error
    missing = [name for name, value in (("STREAMGUARD_KAFKA_BOOTSTRAP", env.kafka_bootstrap),
                                        ("STREAMGUARD_REGISTRY_URL", env.registry_url),
                                        ("STREAMGUARD_REDIS_URL", env.redis_url)) if not value]
    if missing:
        raise click.ClickException(f"StreamingWindow {plan.ref}: missing environment {', '.join(missing)}")
    return plan, env
