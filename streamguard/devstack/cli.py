"""``streamguard dev``: the local stack for development and tests (never for production)."""

import sys
from pathlib import Path

import click

from streamguard.devstack import image as project_image
from streamguard.devstack import node
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.paths import cache_root, run_root
from streamguard.devstack.provision import ProvisionError, artifacts, ensure
from streamguard.devstack.stack import Stack, env_exports
from streamguard.devstack.supervisor import StartError

_run_dir = click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help="Run directory (default: $STREAMGUARD_RUN_DIR or ./.run/stack).")


@click.group("dev")
def command() -> None:
    """Provision and run the local stack: etcd + kube-apiserver (RBAC) + kube-controller-manager +
    kube-scheduler, a node (kubelet + containerd + runc, CNI bridge), Kafka (KRaft), Apicurio Registry
    (Confluent API, BACKWARD default), Redis (AOF) and a 3-master Redis Cluster (reached at the pod bridge's
    address, from the host and from pods), the rest each on a free loopback port. Downloads and
    builds are cached per version under $STREAMGUARD_CACHE (default ~/.cache/streamguard)."""


@command.command()
def provision() -> None:
    """Fetch and build every component that is not cached yet (a cold run takes 10-20 minutes)."""
    try:
        for artifact in ensure().values():
            click.echo(f"{artifact.name:18} {artifact.version:10} {artifact.directory}")
    except ProvisionError as error:
        raise click.ClickException(str(error)) from error


@command.command()
@_run_dir
def up(run_dir: Path | None) -> None:
    """Start the stack (harmless when it already runs) and print where its endpoints are."""
    try:
        endpoints = Stack(run_dir or run_root()).up()
    except (ProvisionError, StartError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"endpoints: {Path(endpoints.run_dir) / 'endpoints.json'}")
    click.echo("try: eval \"$(streamguard dev env)\" && kubectl get namespaces")


@command.command()
@_run_dir
@click.option("--no-import", is_flag=True, help="Only build (or find) the image; do not put it on the node.")
def image(run_dir: Path | None, no_import: bool) -> None:
    """Build the project's images from the Dockerfile with buildah (no daemon; cached by a digest of the
    Dockerfile and the build context, rebuilt only when they change) and import them into the stack's node."""
    try:
        built = project_image.build()
        imported = [] if no_import else node.put_images(built, run_dir or run_root())
    except (ProvisionError, StartError) as error:
        raise click.ClickException(str(error)) from error
    for _, one in built.each():
        within = "within" if one.size_bytes <= project_image.SIZE_BUDGET_BYTES else "OVER"
        click.echo(f"image:    {one.name}")
        click.echo(f"  size:     {one.size_bytes / 1e9:.2f} GB uncompressed ({within} the "
                   f"{project_image.SIZE_BUDGET_BYTES / 1e9:.1f} GB budget; built in {one.build_seconds:.0f}s)")
        click.echo(f"  archive:  {one.archive}")
        if not no_import:
            click.echo(f"  node:     {'imported' if one.name in imported else 'already present'}")


@command.command()
@_run_dir
def down(run_dir: Path | None) -> None:
    """Stop only the processes this stack started."""
    stopped = Stack(run_dir or run_root()).down()
    click.echo(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@command.command()
@_run_dir
@click.argument("service", type=click.Choice(["kafka", "redis", "apicurio-registry"]))
def restart(run_dir: Path | None, service: str) -> None:
    """Restart one service on the same port and data (for failure tests)."""
    Stack(run_dir or run_root()).restart(service)


@command.command()
@_run_dir
def status(run_dir: Path | None) -> None:
    """Show which services run (exit 1 if any is down) and the cached artifacts."""
    states = Stack(run_dir or run_root()).status()
    for name, pid in states.items():
        click.echo(f"{name:24} {'running pid ' + str(pid) if pid else 'stopped'}")
    for artifact in artifacts().values():
        click.echo(f"{artifact.name:24} {artifact.version:10} {'cached' if artifact.present() else 'missing'}")
    click.echo(f"cache: {cache_root()}")
    if not all(states.values()):
        sys.exit(1)


@command.command()
@_run_dir
def env(run_dir: Path | None) -> None:
    """Print shell exports for a running stack: eval "$(streamguard dev env)"."""
    try:
        click.echo(env_exports(Endpoints.load(run_dir or run_root())), nl=False)
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from error


@command.command()
@_run_dir
@click.confirmation_option(prompt="Stop the stack and delete its data, logs and certificates?")
def purge(run_dir: Path | None) -> None:
    """Stop the stack and delete its run directory."""
    Stack(run_dir or run_root()).purge()
