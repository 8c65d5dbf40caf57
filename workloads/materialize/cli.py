"""``streamguard workload materialize``: the command of a FeatureView's materialization CronJob."""

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click

from streamguard.jobspec import JOB_CONFIG_PATH, MaterializeJob, connections_from_env, load
from streamguard.kubeclient import api_client
from streamguard.onlinestore.tenancy import store_project


def _tqdm_progress(total: int, description: str) -> Callable[[int], object]:
    """A tqdm bar that closes itself once ``total`` rows are done."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=description, unit="row", unit_scale=True)

    def update(count: int) -> None:
        bar.update(count)
        if bar.n >= total:
            bar.close()

    if total == 0:
        bar.close()
    return update


@click.command(name="materialize")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=Path(JOB_CONFIG_PATH),
    show_default=True,
    help="The job file the operator mounts (MaterializeJob JSON).",
)
@click.option("--end", "end_text", default=None, help="End of the interval (ISO 8601; default now).")
@click.option(
    "--start", "start_text", default=None, help="Start of the interval, ignoring the watermark (backfills; ISO 8601)."
)
@click.option(
    "--no-status", is_flag=True, help="Keep the watermark in Redis (or --state-file) instead of the FeatureView status."
)
@click.option(
    "--state-file",
    type=click.Path(path_type=Path),
    default=None,
    help="With --no-status: keep the watermark in this JSON file instead of Redis.",
)
@click.option(
    "--base-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Relative spec.source.path values are taken from here (default: the working directory).",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.option(
    "--metrics-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the run's Prometheus metrics here (text format).",
)
def command(
    config_path: Path,
    end_text: str | None,
    start_text: str | None,
    no_status: bool,
    state_file: Path | None,
    base_dir: Path | None,
    progress: bool | None,
    metrics_file: Path | None,
) -> None:
    """Materialize a FeatureView's new rows into Redis (Feast layout) and record the watermark.

    Resumes from the view's status.materializedUntil; re-running an interval is harmless. Endpoints
    come from STREAMGUARD_REDIS_URL (and KUBECONFIG or the in-cluster service account for the status).
    Exits non-zero when the run failed; the FeatureView's Materialized condition says why."""
    from streamguard.onlinestore.client import ERRORS, connect
    from streamguard.workloads.materialize.errors import MaterializeError
    from streamguard.workloads.materialize.metrics import Metrics
    from streamguard.workloads.materialize.run import materialize_incremental, record_failure
    from streamguard.workloads.materialize.watermark import (
        FileWatermark,
        KubeStatus,
        RedisWatermark,
        Watermarks,
        parse_time,
    )

    try:
        job = load(MaterializeJob, config_path)
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    redis_url = connections_from_env().redis_url
    if not redis_url:
        raise click.ClickException("STREAMGUARD_REDIS_URL is not set (the online store's address)")
    try:
        end = parse_time(end_text) if end_text else None
        start = parse_time(start_text) if start_text else None
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    watermarks: Watermarks | None = None  # the store's own: once connected
    if not no_status:
        watermarks = KubeStatus(api_client(), job.namespace, job.name, job.generation)
    elif state_file:
        watermarks = FileWatermark(state_file)
    try:
        client = connect(redis_url)  # a Redis Cluster's client reads the slot table now
    except ERRORS as error:
        if watermarks is None:
            raise click.ClickException(f"FeatureView {job.name}: online store unreachable: {error}") from error
        now = datetime.now(UTC).replace(microsecond=0)
        raise click.ClickException(str(record_failure(watermarks, job.name, error, now))) from error
    if watermarks is None:
        watermarks = RedisWatermark(client, store_project(job.namespace, job.view.project), job.name)
    show = sys.stderr.isatty() if progress is None else progress
    metrics = Metrics()
    try:
        result = materialize_incremental(
            client,
            job.name,
            job.view,
            watermarks,
            end=end,
            start=start,
            base_dir=base_dir,
            progress=_tqdm_progress if show else None,
            metrics=metrics,
            namespace=job.namespace,
        )
    except MaterializeError as error:
        raise click.ClickException(str(error)) from error
    except Exception as error:  # the status write after a successful run: the watermark did not move
        raise click.ClickException(f"FeatureView {job.name}: status: {error}") from error
    finally:
        if metrics_file:
            metrics.write(metrics_file)
    rate = result.stats.written / result.seconds if result.seconds else 0.0
    click.echo(
        f"{job.name}: [{result.start:%Y-%m-%dT%H:%M:%SZ}, {result.end:%Y-%m-%dT%H:%M:%SZ}] "
        f"{result.rows_scanned} rows scanned, {result.stats.written} entities written, "
        f"{result.stats.skipped} skipped (not newer), {result.seconds:.2f}s ({rate:,.0f} rows/s)"
        + (f"; backfilled because {result.backfill}" if result.backfill else "")
    )
