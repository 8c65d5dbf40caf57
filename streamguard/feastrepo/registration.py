"""One FeatureView resource's entries in a Feast registry file: its entities and view applied, or removed,
leaving every other view and project alone. Blocking, imports Feast: the operator runs it in a thread.

A view is registered in the Feast project :func:`~streamguard.onlinestore.tenancy.store_project` of its
namespace and ``spec.project``: the project name Feast puts into its Redis keys, so Feast's own
``materialize_incremental`` and online read use the keys StreamGuard's writers and serving use, and views
of two namespaces never share a Feast project. Each view carries :data:`OWNER_TAG` (``<namespace>/<name>``
of its resource), and a resource whose ``spec.project`` changed leaves no copy behind in its former project.
"""

from pathlib import Path
from typing import Any

from streamguard.api.featureview import FeatureViewSpec
from streamguard.feastrepo.config import render_registry_config
from streamguard.onlinestore.tenancy import DEFAULT_NAMESPACE, store_project

OWNER_TAG = "streamguard.dev/owner"


class RegistrationConflictError(Exception):
    """Another resource already registered a view of this name in this project."""


def open_registry(location: str, project: str) -> Any:
    """Feast's ``Registry`` over the file at ``location`` (created empty when there is none)."""
    from feast.infra.registry.registry import Registry
    from feast.repo_config import RegistryConfig

    return Registry(project, RegistryConfig(**render_registry_config(location)), None)


def _owned(registry: Any, owner: str) -> list[tuple[str, str]]:
    """``(project, view)`` of every view registered for ``owner``."""
    return [
        (proto.spec.project, proto.spec.name)
        for proto in registry.cached_registry_proto.feature_views
        if proto.spec.tags.get(OWNER_TAG) == owner
    ]


def register(location: str, owner: str, name: str, spec: FeatureViewSpec, base_dir: Path, namespace: str) -> bool:
    """Apply the view ``name`` (and its entities) in the store project of ``namespace`` and ``spec.project``;
    drop the owner's views elsewhere.

    Returns False when the view has no offline source (it is then absent from the registry)."""
    from feast import Entity

    from streamguard.feastrepo.objects import feast_objects

    project = store_project(namespace, spec.project)
    registry = open_registry(location, project)
    for proto in registry.cached_registry_proto.feature_views:
        taken_by = proto.spec.tags.get(OWNER_TAG)
        if (proto.spec.project, proto.spec.name) == (project, name) and taken_by not in (None, owner):
            raise RegistrationConflictError(
                f"project {project!r} already has feature view {name!r}, registered for {taken_by}"
            )
    views = []
    for obj in feast_objects({name: spec}, base_dir):
        if isinstance(obj, Entity):
            registry.apply_entity(obj, project, commit=False)
        else:
            obj.tags[OWNER_TAG] = owner
            views.append(obj)
    for owned_project, view in _owned(registry, owner):
        if (owned_project, view) != (project, name) or not views:
            registry.delete_feature_view(view, owned_project, commit=False)
    for view in views:
        registry.apply_feature_view(view, project, commit=False)
    registry.commit()
    return bool(views)


def unregister(location: str, owner: str) -> list[str]:
    """Remove every view registered for ``owner``; return them as ``project/view`` (entities stay: other
    views may share them)."""
    registry = open_registry(location, "")
    owned = _owned(registry, owner)
    for project, view in owned:
        registry.delete_feature_view(view, project, commit=False)
    if owned:
        registry.commit()
    return [f"{project}/{view}" for project, view in owned]


def feature_store(
    location: str, project: str, repo_path: Path | None = None, namespace: str = DEFAULT_NAMESPACE
) -> Any:
    """A Feast ``FeatureStore`` over the registry at ``location`` with the file offline store, for the views of
    ``namespace`` with ``spec.project == project``: what a data scientist needs for ``get_historical_features``
    (object-store credentials from the ``AWS_*`` variables)."""
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    from streamguard.feastrepo.arrows3 import install

    install()
    config = RepoConfig(
        project=store_project(namespace, project),
        provider="local",
        registry=render_registry_config(location),
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
    )
    return FeatureStore(repo_path=str(repo_path or Path.cwd()), config=config)
