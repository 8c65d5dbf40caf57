"""``streamguard workload``: the entrypoints of the containers the operator deploys.

Each subcommand lives with its workload and is imported only when invoked (Spark, Feast and
Evidently are heavy), so one workload's dependencies never load in another's container.
"""

import importlib

import click

_COMMANDS: dict[str, str] = {
    "materialize": "streamguard.workloads.materialize.cli",
    "stream": "streamguard.workloads.streaming.cli",
    "produce": "streamguard.workloads.producer.cli",
    "batch-features": "streamguard.workloads.batch.cli",
    "drift": "streamguard.workloads.drift.cli",
}


class _LazyWorkloads(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        command: click.Command = importlib.import_module(_COMMANDS[cmd_name]).command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the names without importing every workload."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, f"see `{ctx.command_path} {name} --help`") for name in sorted(_COMMANDS)])


@click.group(cls=_LazyWorkloads)
def command() -> None:
    """Entrypoints of the containers the operator deploys."""
