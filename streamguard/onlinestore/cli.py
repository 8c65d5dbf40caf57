"""``streamguard online-store``: what a Redis administrator needs to give each namespace its own ACL user."""

import shlex

import click

from streamguard.onlinestore.tenancy import acl_setuser, store_project


@click.group(name="online-store")
def command() -> None:
    """The online store's tenancy: one Redis ACL user per namespace (docs/security.md)."""


@command.command()
@click.argument("namespace")
@click.option("--project", "projects", multiple=True, default=["streamguard"], show_default=True,
              help="A spec.project of the namespace's FeatureViews (repeat for several).")
@click.option("--user", default=None, help="ACL user name (default: streamguard-<namespace>).")
def acl(namespace: str, projects: tuple[str, ...], user: str | None) -> None:
    """Print the `redis-cli ACL SETUSER` command of NAMESPACE's user (its password read from $PASSWORD)."""
    try:
        for project in projects:
            store_project(namespace, project)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    args = acl_setuser(user or f"streamguard-{namespace}", "PASSWORD", namespace, projects)
    quoted = [shlex.quote(arg) if not arg.startswith(">") else '">$PASSWORD"' for arg in args]
    click.echo(" ".join(["redis-cli", "ACL", "SETUSER", *quoted]))
