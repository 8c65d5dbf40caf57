"""The ``streamguard`` command line. Each command group lives with the code it drives and is
imported only when invoked, so ``streamguard --help`` stays fast (Spark, Feast and Evidently are heavy)."""

import importlib
import importlib.util
from typing import Any

import click

_GROUPS: dict[str, tuple[str, str]] = {
    "dev": ("streamguard.devstack.cli", "Provision and run the local stack (kube-apiserver, Kafka, registry, Redis)."),
    "crds": ("streamguard.api.cli", "Generate and check the CustomResourceDefinitions."),
    "operator": ("streamguard.operator.cli", "Run the Kubernetes operator."),
    "workload": ("streamguard.workloads.cli", "Entrypoints of the containers the operator deploys."),
    "executor": ("streamguard.workloads.streaming.executor",
                 "A Spark executor in a pod Spark on Kubernetes created (its image's argument 'executor')."),
    "stream": ("streamguard.workloads.streaming.stream_cli", "Operate streaming jobs: replay dead letters."),
    "serve": ("streamguard.serving.cli", "Serve feature vectors over HTTP from Redis."),
    "online-store": ("streamguard.onlinestore.cli", "The online store's tenancy: a Redis ACL user per namespace."),
    "feast": ("streamguard.feastrepo.cli", "Generate and apply the Feast repository of FeatureView manifests."),
    "plan": ("streamguard.delivery.plan", "Show what applying a folder of feature resources would change."),
    "validate": ("streamguard.delivery.validate", "Validate feature resources offline (schemas, contracts)."),
    "demo": ("streamguard.demo.cli", "Run the FinServe spine end to end on this machine (development only)."),
}


_DEVELOPMENT = {"dev", "demo"}
"""Groups of the development tooling: in a source checkout (``pip install -e '.[dev]'``), not in the wheel."""


def _installed(name: str) -> bool:
    return name not in _DEVELOPMENT or importlib.util.find_spec(_GROUPS[name][0].rsplit(".", 1)[0]) is not None


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in _GROUPS if _installed(name))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _GROUPS:
            return None
        if not _installed(cmd_name):
            raise click.UsageError(f"'streamguard {cmd_name}' is development tooling, not part of this installation: "
                                   "run it from a source checkout (pip install -e '.[dev]')")
        module = importlib.import_module(_GROUPS[cmd_name][0])
        command: click.Command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in sorted(_GROUPS.items()) if _installed(name)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="streamguard")
def main(**_: Any) -> None:
    """StreamGuard: real-time ML feature pipelines on Kubernetes."""
