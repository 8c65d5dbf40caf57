"""``streamguard plan <dir>``: what applying a folder of feature resources would change, and whether
anything would break (like ``terraform plan``)."""

import sys
from pathlib import Path

import click

from streamguard.delivery import report
from streamguard.delivery.cluster import ClusterUnreachableError
from streamguard.delivery.planner import PlanOptions, make_plan


@click.command("plan")
@click.argument("directory", type=click.Path(exists=True, path_type=Path))
@click.option("--empty", is_flag=True,
              help="Compare with an empty cluster instead of the live one (no cluster needed).")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
              help="Cluster to compare with. [default: $KUBECONFIG or ~/.kube/config]")
@click.option("-n", "--namespace", default="default", show_default=True,
              help="Namespace of resources that do not name one.")
@click.option("--registry-url", envvar="STREAMGUARD_REGISTRY_URL", default=None, show_envvar=True,
              help="Confluent-compatible Schema Registry API base; contracts are checked against its latest versions.")
@click.option("--base", default="HEAD", show_default=True,
              help="Git revision holding the previous contracts (e.g. origin/main in a pull request).")
@click.option("--no-base", is_flag=True, help="Do not look up previous contracts in Git.")
@click.option("--no-feast", is_flag=True, help="Skip `feast plan` on the generated Feast repository.")
@click.option("--feast-registry", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Feast registry file to plan against (a copy is used) [default: an empty registry].")
@click.option("--format", "output_format", type=click.Choice(["text", "markdown"]), default="text", show_default=True,
              help="markdown suits $GITHUB_STEP_SUMMARY.")
def command(directory: Path, empty: bool, kubeconfig: str | None, namespace: str, registry_url: str | None,
            base: str, no_base: bool, no_feast: bool, feast_registry: Path | None, output_format: str) -> None:
    """Show what applying the FeatureViews, StreamingWindows and DriftMonitors in DIRECTORY would change.

    \b
    Lists every resource as created, changed (with a field-level diff of its spec) or deleted, compared
    with the live cluster (or an empty one with --empty), and checks that nothing would break:
      * each resource against the CRD schemas (server-side dry-run apply when a cluster is reachable,
        the API models and the CRDs' CEL rules otherwise), and the references between resources;
      * every new or changed Avro contract for BACKWARD compatibility, against the Schema Registry
        and against the previous contract (live cluster, or `git show BASE:<file>`);
      * `feast plan` on the Feast repository the FeatureViews generate.
    Exits 1 when anything would break, 2 when the cluster cannot be reached.
    """
    options = PlanOptions(path=directory, namespace=namespace, empty=empty, kubeconfig=kubeconfig,
                          registry_url=registry_url or None, base=None if no_base else base, feast=not no_feast,
                          feast_registry=feast_registry)
    try:
        plan = make_plan(options)
    except ClusterUnreachableError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    click.echo(report.markdown(plan) if output_format == "markdown" else report.text(plan), nl=False)
    sys.exit(1 if plan.breaking else 0)


