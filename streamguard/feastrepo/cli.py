"""``streamguard feast``: the Feast repository generated from FeatureView manifests."""

import os
from collections.abc import Callable
from pathlib import Path

import click

from streamguard.api.featureview import FeatureViewSpec
from streamguard.finserve.resources import EXAMPLES_DIR, load_manifests
from streamguard.onlinestore.tenancy import DEFAULT_NAMESPACE, store_project

_MANIFESTS = click.option(
    "--manifests",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=EXAMPLES_DIR,
    show_default=True,
    help="Folder of FeatureView YAML (the source of truth).",
)


def _views(manifests: Path, project: str | None) -> tuple[str, dict[str, FeatureViewSpec]]:
    views = {name: fv.spec for name, fv in load_manifests(manifests).feature_views.items()}
    projects = sorted({spec.project for spec in views.values()})
    if project is None:
        if len(projects) != 1:
            raise click.UsageError(f"the manifests span projects {projects}: choose one with --project")
        project = projects[0]
    chosen = {name: spec for name, spec in views.items() if spec.project == project}
    if not chosen:
        raise click.UsageError(f"no FeatureView in {manifests} belongs to project {project!r}")
    return project, chosen


def _redis_url(value: str | None) -> str:
    """The store's URL; a CA file it names must be on this machine, where Feast will read it (a URL copied from a
    pod's Secret names the pod's path)."""
    from streamguard.onlinestore.client import CA_PARAMETER, ca_file

    url = value or os.environ.get("STREAMGUARD_REDIS_URL")
    if not url:
        raise click.UsageError("give --redis-url or set STREAMGUARD_REDIS_URL")
    cafile = ca_file(url)
    if cafile and not Path(cafile).is_file():
        raise click.UsageError(f"the Redis URL's {CA_PARAMETER} {cafile!r} is not a file on this machine (a path "
                               f"in a pod?): copy the CA here and name its path in {CA_PARAMETER}")
    return url


@click.group(name="feast")
def command() -> None:
    """The Feast repository of a folder of FeatureView manifests (no hand-written Feast Python)."""


_REPO_OPTIONS = (
    _MANIFESTS,
    click.option("--repo", type=click.Path(path_type=Path, file_okay=False), required=True, help="Folder to write."),
    click.option("--project", default=None, help="Only views of this project (default: the only one)."),
    click.option("--redis-url", default=None, help="Online store (default: STREAMGUARD_REDIS_URL)."),
    click.option(
        "--namespace",
        default=DEFAULT_NAMESPACE,
        show_default=True,
        help="Namespace of the FeatureViews: with the project, it names the Feast project (the keys' suffix).",
    ),
)


def _repo_options(func: Callable[..., None]) -> Callable[..., None]:
    """The options of a command that writes the repository: where from, where to, which project, which store."""
    for option in reversed(_REPO_OPTIONS):
        func = option(func)
    return func


def _write(
    manifests: Path, repo: Path, project: str | None, redis_url: str | None, namespace: str
) -> tuple[str, int]:
    """Write the repository; returns its Feast project and how many feature views it holds."""
    from urllib.parse import urlsplit

    from streamguard.feastrepo.config import REDIS_PASSWORD_ENV
    from streamguard.feastrepo.repo import write_repo

    name, views = _views(manifests, project)
    url = _redis_url(redis_url)
    try:
        write_repo(repo, name, views, url, namespace=namespace)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    if urlsplit(url).password:
        click.echo(f"feature_store.yaml reads the Redis password from ${REDIS_PASSWORD_ENV}: set it wherever Feast "
                   "opens this repository")
    return store_project(namespace, name), len(views)


@command.command()
@_repo_options
def render(manifests: Path, repo: Path, project: str | None, redis_url: str | None, namespace: str) -> None:
    """Write feature_store.yaml, views.json and the generated features.py (usable by `feast plan`)."""
    name, count = _write(manifests, repo, project, redis_url, namespace)
    click.echo(f"{repo}: project {name}, {count} feature views")


@command.command()
@_repo_options
def apply(manifests: Path, repo: Path, project: str | None, redis_url: str | None, namespace: str) -> None:
    """Render the repository and register it in Feast's registry (pruning views no longer declared)."""
    from streamguard.feastrepo.repo import apply_repo

    name, _ = _write(manifests, repo, project, redis_url, namespace)
    click.echo(f"{repo}: project {name}, applied {', '.join(apply_repo(repo))}")


@command.command()
@_MANIFESTS
@click.argument("view")
@click.option("--namespace", default="default", show_default=True)
def job(manifests: Path, view: str, namespace: str) -> None:
    """Print the MaterializeJob JSON of VIEW (what the operator mounts), to run the materializer by hand."""
    from streamguard.jobspec import MaterializeJob

    views = load_manifests(manifests).feature_views
    if view not in views:
        raise click.UsageError(f"no FeatureView {view!r} in {manifests} (have: {', '.join(sorted(views))})")
    click.echo(MaterializeJob(namespace=namespace, name=view, view=views[view].spec).model_dump_json(indent=2))
