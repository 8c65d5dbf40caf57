"""The Feast registry the operator keeps on the object store: the thin async shell around
:mod:`streamguard.feastrepo.registration`, and the ``Registered`` condition it reports.

Feast rewrites the whole registry file on each change, so the operator makes one change at a time. The
operator reads the registry with the object-store credentials of its own environment (its Deployment fills
them from the object-store Secret); messages name that Secret, never a key.
"""

import asyncio
from pathlib import Path

from streamguard import objectstore
from streamguard.api.featureview import FeatureViewSpec
from streamguard.feastrepo import registration
from streamguard.onlinestore.tenancy import store_project
from streamguard.operator.render.common import Manifest
from streamguard.operator.status import Cond

CONDITION = "Registered"
FINALIZER = "streamguard.dev/feast-registry"


class FeastRegistryError(Exception):
    """The registry could not be read or written; the message is safe to show (credentials removed)."""


def owner_of(body: Manifest) -> str:
    return f"{body['metadata']['namespace']}/{body['metadata']['name']}"


class FeastRegistry:
    def __init__(self, location: str, base_dir: Path | None = None) -> None:
        self.location = location
        self.base_dir = base_dir or Path.cwd()
        self._lock = asyncio.Lock()

    def _failure(self, error: Exception) -> FeastRegistryError:
        if isinstance(error, objectstore.ObjectStoreError):
            return FeastRegistryError(f"Feast registry {self.location}: {error}")
        try:
            where = objectstore.resolve(self.location, self.base_dir)
        except objectstore.ObjectStoreError as missing:
            return FeastRegistryError(f"Feast registry {self.location}: {missing}")
        detail = where.describe_failure(error)
        return FeastRegistryError(f"Feast registry {self.location}: {type(error).__name__}: {detail}")

    async def register(self, body: Manifest, spec: FeatureViewSpec) -> Cond:
        """Apply the view and report it as the ``Registered`` condition (False with the reason on failure)."""
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        async with self._lock:
            try:
                registered = await asyncio.to_thread(
                    registration.register, self.location, owner_of(body), name, spec, self.base_dir, namespace
                )
            except registration.RegistrationConflictError as error:
                return Cond(CONDITION, "False", "NameTaken", f"Feast registry {self.location}: {error}")
            except objectstore.ObjectStoreError as error:
                return Cond(CONDITION, "False", "ObjectStoreCredentials", str(self._failure(error)))
            except Exception as error:  # Feast, pyarrow and protobuf each raise their own kinds
                return Cond(CONDITION, "False", "RegistryError", str(self._failure(error)))
        if not registered:
            return Cond(
                CONDITION, "False", "NoOfflineSource",
                "spec.source is not set: only views with an offline source are in the Feast registry",
            )
        return Cond(
            CONDITION, "True", "Registered",
            f"feature view {name!r} in Feast project {store_project(namespace, spec.project)!r} of the Feast registry "
            f"{self.location}",
        )

    async def unregister(self, body: Manifest) -> list[str]:
        """Remove the resource's views; raises :class:`FeastRegistryError`."""
        async with self._lock:
            try:
                return await asyncio.to_thread(registration.unregister, self.location, owner_of(body))
            except Exception as error:  # as in register
                raise self._failure(error) from error
