"""``streamguard operator``: run the operator, print its RBAC."""

import asyncio
import logging
import random

import click

from streamguard.operator.peering import manifests_yaml
from streamguard.operator.rbac import ROLE_NAME, cluster_role_yaml


@click.group("operator")
def command() -> None:
    """Run the StreamGuard operator (kopf) and print what it needs from the cluster."""


@command.command("run")
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Namespace to watch (repeatable; globs allowed). Default: all namespaces.",
)
@click.option("-A", "--all-namespaces", is_flag=True, help="Watch every namespace (the default without -n).")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    default=None,
    help="Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, then in-cluster).",
)
@click.option(
    "--liveness",
    "liveness",
    default=None,
    metavar="URL",
    help="Serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz.",
)
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics of the operator on this port.")
@click.option(
    "--peering",
    "peering_name",
    default=None,
    help="kopf peering object for HA: only the highest-priority replica acts (needs kopf's peering CRDs).",
)
@click.option(
    "--priority",
    type=int,
    default=None,
    help="This replica's peering priority (default with --peering: random, so replicas never tie and freeze).",
)
@click.option("--standalone", is_flag=True, help="Ignore peering entirely (single replica).")
@click.option(
    "--registry-url",
    default=None,
    help="Schema Registry base URL the operator calls "
    "(default: $STREAMGUARD_OPERATOR_REGISTRY_URL or $STREAMGUARD_REGISTRY_URL).",
)
@click.option("--image", default=None, help="Workload image (default: $STREAMGUARD_OPERATOR_IMAGE).")
@click.option("--workers", type=int, default=None, help="Concurrent reconciles.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def run(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    kubeconfig: str | None,
    liveness: str | None,
    metrics_port: int | None,
    peering_name: str | None,
    priority: int | None,
    standalone: bool,
    registry_url: str | None,
    image: str | None,
    workers: int | None,
    verbose: bool,
) -> None:
    """Reconcile FeatureViews, StreamingWindows and DriftMonitors until interrupted.

    Settings come from STREAMGUARD_OPERATOR_* environment variables (see streamguard.operator.settings);
    the options here override them.
    """
    import kopf

    from streamguard.operator.handlers import build_registry
    from streamguard.operator.settings import OperatorSettings

    if namespaces and all_namespaces:
        raise click.UsageError("use either --namespace or --all-namespaces, not both")
    if peering_name and standalone:
        raise click.UsageError("use either --peering or --standalone, not both")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "httpcore", "kopf.objects", "kopf.activities.probe"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        settings = OperatorSettings.from_env(operator_registry_url=registry_url, image=image, workers=workers)
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    registry = build_registry(settings, kubeconfig=kubeconfig, metrics_port=metrics_port)
    if peering_name and priority is None:
        priority = random.randint(1, 1_000_000)
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            liveness_endpoint=liveness,
            peering_name=peering_name,
            priority=priority,
            standalone=True if standalone or not peering_name else None,
        )
    )


@command.command("rbac")
@click.option("--name", default=ROLE_NAME, show_default=True, help="Name of the ClusterRole.")
def rbac(name: str) -> None:
    """Print the least-privilege ClusterRole the operator needs."""
    click.echo(cluster_role_yaml(name), nl=False)


@command.command("peering")
@click.argument("name", default="streamguard")
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Namespaces a namespaced operator watches (default: a cluster-wide peering).",
)
def peering(name: str, namespaces: tuple[str, ...]) -> None:
    """Print kopf's peering CRDs and the peering object NAME, for `operator run --peering NAME` (HA)."""
    click.echo(manifests_yaml(name, namespaces), nl=False)
