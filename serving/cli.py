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
@click.option(
    "--max-body-bytes",
    default=1024 * 1024,
    show_default=True,
    type=click.IntRange(min=1024),
    help="Largest POST /features body; larger is refused with 413 before it is read.",
)
@click.option(
    "--max-entity-keys", default=16, show_default=True, type=click.IntRange(min=1), help="Keys per entity row (413)."
)
@click.option(
    "--max-concurrent-lookups",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="POST /features in progress per worker (reading or answering); more get 429 with Retry-After.",
)
@click.option("--retry-after", default=1, show_default=True, type=click.IntRange(min=1), help="Retry-After of a 429.")
@click.option(
    "--cache-max-bytes",
    default=64 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(min=1024),
    help="Estimated bytes of cached Redis reads per worker (oldest dropped first).",
)
@click.option(
    "--selection-cache-bytes",
    default=8 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(min=1024),
    help="Estimated bytes of resolved feature lists kept per worker.",
)
@click.option(
    "--auth-token-file",
    envvar="STREAMGUARD_SERVING_AUTH_TOKEN_FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="File of accepted bearer tokens, one a line (mount a Secret key; re-read when it changes, so tokens "
    "rotate without a restart). Everything but /livez, /readyz and /metrics needs one.",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Development only: serve without authentication. One of this or --auth-token-file is required.",
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
    max_body_bytes: int,
    max_entity_keys: int,
    max_concurrent_lookups: int,
    retry_after: int,
    cache_max_bytes: int,
    selection_cache_bytes: int,
    auth_token_file: str | None,
    insecure_no_auth: bool,
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

    from streamguard.serving.auth import TokenFile
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
            max_body_bytes=max_body_bytes,
            max_entity_keys=max_entity_keys,
            max_concurrent_lookups=max_concurrent_lookups,
            retry_after_seconds=retry_after,
            cache_max_bytes=cache_max_bytes,
            selection_cache_bytes=selection_cache_bytes,
            auth_token_file=str(Path(auth_token_file).resolve()) if auth_token_file else None,
            insecure_no_auth=insecure_no_auth,
        )
    except ValidationError as error:
        raise click.UsageError("; ".join(e["msg"] for e in error.errors())) from error
    try:
        if settings.config_file is not None:
            FileSource(settings.config_file)
        if settings.auth_token_file is not None:
            TokenFile(settings.auth_token_file)
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
