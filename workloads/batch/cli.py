"""``streamguard workload batch-features``: the offline tables of the FinServe views, with Spark."""

import time
from pathlib import Path

import click

from streamguard.finserve.resources import EXAMPLES_DIR, load_manifests


@click.command(name="batch-features")
@click.option(
    "--transactions",
    "transactions",
    type=click.Path(path_type=Path),
    default=Path(".run/data/finserve/raw/transactions.parquet"),
    show_default=True,
    help="Raw transactions written by examples/finserve/generate.py.",
)
@click.option(
    "--manifests",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=EXAMPLES_DIR,
    show_default=True,
    help="Folder of FeatureView/StreamingWindow YAML; tables go to spec.source.path.",
)
@click.option("--view", "views", multiple=True, help="Only these FeatureViews (repeatable).")
@click.option("--cores", type=click.IntRange(1, 64), default=2, show_default=True)
def command(transactions: Path, manifests: Path, views: tuple[str, ...], cores: int) -> None:
    """Compute the batch features (daily 7/30/90-day profiles) and the point-in-time window features
    of every FeatureView in MANIFESTS into Parquet offline tables."""
    from streamguard.workloads.batch.job import BatchInputError, run
    from streamguard.workloads.batch.session import local_session

    loaded = load_manifests(manifests)
    started = time.perf_counter()
    spark = local_session("streamguard-batch-features", cores)
    try:
        written = run(spark, transactions, loaded, set(views) if views else None)
    except BatchInputError as error:
        raise click.ClickException(str(error)) from error
    finally:
        spark.stop()
    for table in written:
        click.echo(f"{table.view}: {table.rows:,} rows -> {table.path}")
    click.echo(f"done in {time.perf_counter() - started:.1f}s")
