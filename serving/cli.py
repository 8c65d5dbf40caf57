"""``streamguard serve``: run the feature server with uvicorn."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from streamguard.serving.settings import ADVISORY_VIEWS_ENV, REQUIRED_VIEWS_ENV, Settings, parse_view_list

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _at_least(flag: str, default: float, minimum: float, help_text: str) -> Decorator:
    """An option bounded below: an integer range for an integer default, a float range otherwise."""
    bounded = click.IntRange(min=int(minimum)) if isinstance(default, int) else click.FloatRange(min=minimum)
    return click.option(flag, default=default, show_default=True, type=bounded, help=help_text)


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
    help="redis:// or rediss:// URL; add ?cluster=true for a node of a Redis Cluster (env STREAMGUARD_REDIS_URL; "
         "keep passwords in a Secret).",
)
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@_at_least("--workers", 1, 1, "uvicorn processes (each keeps its own cache and /metrics).")
@_at_least("--max-connections", 50, 1, "Redis pool size.")
@_at_least("--cache-staleness", 1.0, 0,
           "Seconds a cached Redis read (values and stream progress) may be served, so a stream that stops "
           "progressing shows as stale at most this much later (window values are read again as soon as their job "
           "writes a batch); 0 turns the cache off.")
@_at_least("--max-batch", 1000, 1, "Entity rows per request.")
@_at_least("--redis-timeout", 0.25, 0.001, "Seconds to connect to Redis or wait for its answer; then 503.")
@_at_least("--freshness-interval", 5.0, 0.1,
           "Seconds between refreshes of the freshness gauges and of the Redis server's identity (an eviction or "
           "a maxmemory-policy change shows within one; /readyz always checks live).")
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
@_at_least("--max-body-bytes", 1024 * 1024, 1024,
           "Largest POST /features body; larger is refused with 413 before it is read.")
@_at_least("--max-entity-keys", 16, 1, "Keys per entity row (413).")
@_at_least("--max-concurrent-lookups", 64, 1,
           "POST /features in progress per worker (reading or answering); more get 429 with Retry-After.")
@_at_least("--client-bytes-in-flight", 1024 * 1024, 1,
           "Body bytes of lookups one client (bearer token; address with --insecure-no-auth) may have in "
           "progress per worker, from Content-Length before reading; more get 429 with Retry-After.")
@_at_least("--client-values-in-flight", 65536, 1,
           "Values (entity rows x features) one client may have being looked up per worker; more get 429.")
@_at_least("--client-values-per-second", 100_000.0, 0,
           "Values (entity rows x features) one client may have looked up per second per worker (a token bucket "
           "of one second's worth); over it: 429 with Retry-After before its next body is read. 0: no limit.")
@_at_least("--slice-rows", 50, 1,
           "Entity rows validated or looked up between two turns of the event loop (one Redis round trip each).")
@_at_least("--retry-after", 1, 1, "Retry-After of a 429.")
@_at_least("--cache-max-bytes", 64 * 1024 * 1024, 1024,
           "Estimated bytes of cached Redis reads per worker (oldest dropped first).")
@_at_least("--selection-cache-bytes", 8 * 1024 * 1024, 1024,
           "Estimated bytes of resolved feature lists kept per worker.")
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
    host: str,
    port: int,
    workers: int,
    redis_timeout: float,
    required_views: str,
    advisory_views: str,
    retry_after: int,
    auth_token_file: str | None,
    log_level: str,
    **same_named: Any,
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
            config_file=str(Path(config_file).resolve()) if config_file else None,
            namespace=namespace,
            kubeconfig=kubeconfig if namespace else None,
            socket_timeout=redis_timeout,
            connect_timeout=redis_timeout,
            required_views=parse_view_list(required_views),
            advisory_views=parse_view_list(advisory_views),
            retry_after_seconds=retry_after,
            auth_token_file=str(Path(auth_token_file).resolve()) if auth_token_file else None,
            **same_named,  # the options named as their Settings field (--max-batch: max_batch, ...)
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
