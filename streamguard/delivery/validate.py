"""``streamguard validate <dir>``: the offline subset of ``streamguard plan`` (no cluster, no registry)."""

import sys
from pathlib import Path

import click

from streamguard.delivery import report
from streamguard.delivery.planner import PlanOptions, make_plan


@click.command("validate")
@click.argument("directory", type=click.Path(exists=True, path_type=Path))
@click.option("-n", "--namespace", default="default", show_default=True,
              help="Namespace of resources that do not name one.")
@click.option("--base", default="HEAD", show_default=True,
              help="Git revision holding the previous contracts to check BACKWARD compatibility against.")
@click.option("--no-base", is_flag=True, help="Do not look up previous contracts in Git.")
@click.option("--format", "output_format", type=click.Choice(["text", "markdown"]), default="text", show_default=True)
def command(directory: Path, namespace: str, base: str, no_base: bool, output_format: str) -> None:
    """Validate the resources in DIRECTORY without a cluster or a registry.

    \b
    Checks each FeatureView, StreamingWindow and DriftMonitor against the API models and the CRDs'
    CEL rules, the references between them, each Avro contract (valid record, holds the fields the
    window reads) and, against the version at the Git revision BASE, the BACKWARD compatibility of
    every changed contract.
    Exits 1 when anything would break.
    """
    options = PlanOptions(path=directory, namespace=namespace, empty=True, base=None if no_base else base,
                          feast=False)
    plan = make_plan(options)
    plan.offline = True
    click.echo(report.markdown(plan) if output_format == "markdown" else report.text(plan), nl=False)
    sys.exit(1 if plan.breaking else 0)
