"""``streamguard workload drift``: the entrypoint of a DriftMonitor's exporter Deployment."""

import json
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

import click
from prometheus_client import disable_created_metrics, start_http_server

from streamguard import jobspec
from streamguard.kubeclient import api_client
from streamguard.workloads.drift.analysis import DriftResult
from streamguard.workloads.drift.exporter import Exporter


def _summary(outcome: object) -> dict[str, object]:
    if isinstance(outcome, DriftResult):
        return {
            "driftShare": outcome.drift_share,
            "driftedFeatures": list(outcome.drifted_features),
            "scores": {s.feature: {"method": s.method, "value": s.value, "drifted": s.drifted} for s in outcome.scores},
            "referenceRows": outcome.reference_rows,
            "currentRows": outcome.current_rows,
        }
    return {"error": str(outcome), "reason": getattr(outcome, "reason", "RunFailed")}


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=jobspec.JOB_CONFIG_PATH,
    show_default=True,
    help="The DriftJob file the operator mounts from the monitor's ConfigMap.",
)
@click.option("--once", is_flag=True, help="Run one drift comparison, print it as JSON and exit (1 on error).")
@click.option("--no-status", is_flag=True, help="Do not write the DriftMonitor status (no Kubernetes API needed).")
@click.option(
    "--log-level", default="INFO", show_default=True, type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"])
)
def command(config_path: Path, once: bool, no_status: bool, log_level: str) -> None:
    """Compare a DriftMonitor's current window with its reference data using Evidently.

    Runs at start and then every spec.interval; serves Prometheus gauges on /metrics (port
    metricsPort of the job) and writes driftShare, driftedFeatures, scores and the Drifted condition
    into the DriftMonitor's status. Bad input is reported in status and logs and retried next interval.
    """
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        job = jobspec.load(jobspec.DriftJob, config_path)
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(f"cannot read drift job {config_path}: {error}") from None
    api = None
    if not no_status:
        try:
            api = api_client()
        except Exception as error:
            raise click.ClickException(
                f"cannot configure the Kubernetes client (in-cluster or KUBECONFIG): {error}; "
                "use --no-status to export metrics only"
            ) from None
    exporter = Exporter.create(job, api)
    if once:
        outcome = exporter.run_once()
        click.echo(json.dumps(_summary(outcome), indent=2))
        raise SystemExit(0 if isinstance(outcome, DriftResult) else 1)
    disable_created_metrics()  # type: ignore[no-untyped-call]
    port = jobspec.metrics_port(job.metrics_port)
    try:
        start_http_server(port, registry=exporter.metrics.registry)
    except OSError as error:
        raise click.ClickException(f"cannot serve /metrics on port {port}: {error}") from None
    logging.getLogger("streamguard.drift").info(
        "%s: serving /metrics on :%d, running every %s",
        exporter.metrics.plan.ref,
        port,
        job.monitor.interval,
    )
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    exporter.serve_forever(stop)
