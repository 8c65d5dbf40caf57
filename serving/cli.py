"""``streamguard serve``: run the feature server with uvicorn."""

import os
from pathlib import Path

import click
from pydantic import ValidationError

from streamguard.serving.settings import ADVISORY_VIEWS_ENV, REQUIRED_VIEWS_ENV, Settings, parse_view_list


@click.command("serve")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML of FeatureView/StreamingWindow manifests (as the operator renders it).",
)
@click.option("--from-cluster", "namespace", metavar="NAMESPACE", help="Watch the resources of this namespace.")
@click.option("--kubeconfig", envvar="KUBECONFIG", help="With --from-cluster: kubeconfig (default: in-cluster).")
@click.option(
    "--redis-url",
    envvar="STREAMGUARD_REDIS_URL",
    default="redis://127.0.0.1:6379/0",
    show_default=True,
    help="redis:// or rediss:// URL (env STREAMGUARD_REDIS_URL; keep passwords in a Secret).",
)
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="uvicorn processes (each keeps its own cache and /metrics).",
)
@click.option("--max-connections", default=50, show_default=True, type=click.IntRange(min=1), help="Redis pool size.")
@click.option(
    "--cache-staleness",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds a cached Redis read (values and stream progress) may be served, so a stream that stops "
    "progressing shows as stale at most this much later; 0 turns the cache off.",
)
@click.option(
    "--max-batch", default=1000, show_default=True, type=click.IntRange(min=1), help="Entity rows per request."
)
@click.option(
    "--redis-timeout",
    default=0.25,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Seconds to connect to Redis or wait for its answer; then 503.",
)
@click.option(
    "--freshness-interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between refreshes of the freshness gauges and of the Redis server's identity (an eviction or "
    "a maxmemory-policy change shows within one; /readyz always checks live).",
)
@click.option(
    "--required-views",
    envvar=REQUIRED_VIEWS_ENV,
    default="*",
    show_default=True,
    metavar="GLOBS",
    help="Comma-separated FeatureView names or globs whose freshness /readyz requires (env "
    f"{REQUIRED_VIEWS_ENV}). An exact name that is not served makes the server unready.",
)
@click.option(
    "--advisory-views",
    envvar=ADVISORY_VIEWS_ENV,
    default="",
    metavar="GLOBS",
    help="Comma-separated FeatureView names or globs that are advisory: their staleness shows in metrics "
    f"and the /readyz body but never makes the server unready; wins over --required-views (env {ADVISORY_VIEWS_ENV}).",
)
@click.option("--log-level", default="warning", show_default=True)
def command(
    config_file: str | None,
    namespace: str | None,
    kubeconfig: str | None,
    redis_url: str,
    host: str,
    port: int,
    workers: int,
    max_connections: int,
    cache_staleness: float,
    max_batch: int,
    redis_timeout: float,
    freshness_interval: float,
    required_views: str,
    advisory_views: str,
    log_level: str,
) -> None:
    """Serve feature vectors over HTTP from Redis.

    Features come from the FeatureView and StreamingWindow resources: watched in a namespace
    (--from-cluster) or read from a file of their manifests (--config). POST /features looks values
    up (statuses present, stale, partial, expired, not_found); /readyz fails while Redis is down or a
    required view's data is older than its freshness SLA (--required-views, --advisory-views);
    /metrics for Prometheus; /docs for the OpenAPI description.
    """
    import uvicorn

    from streamguard.serving.sources import FileSource

    try:
        settings = Settings(
            redis_url=redis_url,
            config_file=str(Path(config_file).resolve()) if config_file else None,
            namespace=namespace,
            kubeconfig=kubeconfig if namespace else None,
            max_connections=max_connections,
            socket_timeout=redis_timeout,
            connect_timeout=redis_timeout,
            cache_staleness=cache_staleness,
            max_batch=max_batch,
            freshness_interval=freshness_interval,
            required_views=parse_view_list(required_views),
            advisory_views=parse_view_list(advisory_views),
        )
    except ValidationError as error:
        raise click.UsageError("; ".join(e["msg"] for e in error.errors())) from error
    if settings.config_file is not None:
        try:
            FileSource(settings.config_file)
        except ValueError as error:
            raise click.ClickException(str(error)) from error
    os.environ.update(settings.to_env())
    uvicorn.run(
        "streamguard.serving.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level=log_level,
        loop="uvloop",
        http="httptools",
    )
