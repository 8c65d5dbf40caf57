"""``streamguard crds``: write or check the generated CRD manifests (top-level and the chart's copy)."""

import sys
from pathlib import Path

import click

from streamguard.api.crdgen import render_all, write_all

DEFAULT_DIRS = (Path("crds"), Path("charts/streamguard/crds"))
_dirs = click.option("--dir", "directories", type=click.Path(file_okay=False, path_type=Path), multiple=True,
                     default=DEFAULT_DIRS, show_default=True, help="Folder to write or check (repeatable).")


@click.group("crds")
def command() -> None:
    """Generate and check the CustomResourceDefinitions in crds/ and the Helm chart."""


@command.command("generate")
@_dirs
def generate(directories: tuple[Path, ...]) -> None:
    """Write the CRD YAML generated from the API models."""
    for directory in directories:
        for path in write_all(directory):
            click.echo(f"wrote {path}")


@command.command("check")
@_dirs
def check(directories: tuple[Path, ...]) -> None:
    """Exit non-zero when committed CRDs differ from the models."""
    stale = [str(directory / name) for directory in directories for name, text in render_all().items()
             if not (directory / name).is_file() or (directory / name).read_text() != text]
    if stale:
        click.echo(f"stale CRDs (run `streamguard crds generate`): {', '.join(stale)}", err=True)
        sys.exit(1)
    click.echo("CRDs match the API models")
