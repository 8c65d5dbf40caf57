"""Where the catalog comes from: the FeatureView and StreamingWindow resources, either watched in a
namespace of the cluster or read from a YAML file of their manifests (as the operator renders it).

``resources_from_documents`` is pure; :class:`FileSource` and :class:`ClusterSource` are the shells.
"""

import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from streamguard.api.common import GROUP, VERSION
from streamguard.api.featureview import FeatureViewSpec
from streamguard.api.kinds import FEATURE_VIEW, STREAMING_WINDOW
from streamguard.api.streamingwindow import StreamingWindowSpec
from streamguard.onlinestore.tenancy import DEFAULT_NAMESPACE, store_project
from streamguard.serving.catalog import Catalog, ViewResource, WindowResource, build_catalog

log = logging.getLogger(__name__)
PLURALS = {kind.kind: kind.plural for kind in (FEATURE_VIEW, STREAMING_WINDOW)}
"""The kinds serving reads (its catalog); drift monitors are not served."""


class CatalogSource(Protocol):
    def current(self) -> Catalog | None:
        """The newest catalog; ``None`` until the resources were read once."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def _field_path(error: Mapping[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"])


def _describe(error: ValidationError) -> str:
    return "; ".join(f"spec.{_field_path(e)}: {e['msg']}" for e in error.errors(include_url=False))


def _status_newest(status: object) -> float | None:
    """Newest event time the materializer reported: ``lastMaterializedAt - freshnessSeconds``."""
    if not isinstance(status, dict):
        return None
    at, age = status.get("lastMaterializedAt"), status.get("freshnessSeconds")
    if not isinstance(at, str) or not isinstance(age, int | float):
        return None
    try:
        moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() - float(age)


def resources_from_documents(
    documents: Iterable[Any], where: str
) -> tuple[list[ViewResource], list[WindowResource], list[str]]:
    """Parse manifests (``kind: List`` and plain lists are flattened; other kinds are ignored).

    Returns the views, the windows and one problem per document that is not a valid resource, naming
    ``where``, the resource and the field.
    """
    views: list[ViewResource] = []
    windows: list[WindowResource] = []
    problems: list[str] = []
    pending = [(f"{where}[{i}]", doc) for i, doc in enumerate(documents)]
    while pending:
        location, doc = pending.pop(0)
        if doc is None:
            continue
        if isinstance(doc, list):
            pending[:0] = [(f"{location}[{i}]", item) for i, item in enumerate(doc)]
            continue
        if not isinstance(doc, dict):
            problems.append(f"{location}: not a Kubernetes manifest (a mapping with kind and metadata)")
            continue
        kind = doc.get("kind")
        if kind == "List" or (isinstance(kind, str) and kind.endswith("List") and "items" in doc):
            pending[:0] = [(f"{location}.items[{i}]", item) for i, item in enumerate(doc.get("items") or [])]
            continue
        if kind not in PLURALS:
            continue
        metadata = doc.get("metadata") or {}
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if not isinstance(name, str) or not name:
            problems.append(f"{location}: {kind} without metadata.name")
            continue
        if doc.get("apiVersion", f"{GROUP}/{VERSION}") != f"{GROUP}/{VERSION}":
            problems.append(f"{location}: {kind} {name}: unsupported apiVersion {doc.get('apiVersion')!r}")
            continue
        try:
            if kind == "FeatureView":
                annotations = metadata.get("annotations") or {}
                spec = FeatureViewSpec.model_validate(doc.get("spec"))
                namespace = metadata.get("namespace") or DEFAULT_NAMESPACE
                store_project(namespace, spec.project)  # a ValueError names a namespace no key can carry
                views.append(
                    ViewResource(name, spec, dict(annotations), _status_newest(doc.get("status")), namespace)
                )
            else:
                windows.append(WindowResource(name, StreamingWindowSpec.model_validate(doc.get("spec"))))
        except ValidationError as error:
            problems.append(f"{location}: {kind} {name}: {_describe(error)}")
        except (TypeError, ValueError) as error:  # e.g. annotations that are not a mapping
            problems.append(f"{location}: {kind} {name}: {error}")
    return views, windows, problems


class FileSource:
    """A YAML file (one or many documents) of FeatureView and StreamingWindow manifests."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            documents = list(yaml.safe_load_all(self.path.read_text()))
        except (OSError, yaml.YAMLError) as error:
            raise ValueError(f"cannot read feature config {self.path}: {error}") from error
        views, windows, problems = resources_from_documents(documents, str(self.path))
        namespaces = sorted({view.namespace for view in views})
        if len(namespaces) > 1:
            problems.append(f"{self.path}: FeatureViews of several namespaces ({', '.join(namespaces)}); serving "
                            "serves one namespace")
        if problems:
            raise ValueError("invalid feature config:\n  " + "\n  ".join(problems))
        self._catalog = build_catalog(views, windows)

    def current(self) -> Catalog | None:
        return self._catalog

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


class ClusterSource:
    """Lists and watches FeatureViews and StreamingWindows of one namespace; rebuilds the catalog on
    every change. An invalid object (which admission should have refused) is skipped and reported in
    the catalog's problems."""

    def __init__(self, namespace: str, kubeconfig: str | None = None, retry_seconds: float = 2.0) -> None:
        self.namespace = namespace
        self.kubeconfig = kubeconfig
        self.retry_seconds = retry_seconds
        self._objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in PLURALS}
        self._listed: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._catalog: Catalog | None = None

    def current(self) -> Catalog | None:
        return self._catalog

    def start(self) -> None:
        from kubernetes import client

        from streamguard.kubeclient import api_client

        api = client.CustomObjectsApi(api_client(self.kubeconfig))
        for kind in PLURALS:
            thread = threading.Thread(target=self._run, args=(api, kind), name=f"watch-{kind}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _run(self, api: Any, kind: str) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        plural = PLURALS[kind]
        while not self._stopping.is_set():
            try:
                listing = api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, _request_timeout=10)
                self._replace(kind, listing.get("items", []))
                version = listing["metadata"]["resourceVersion"]
                while not self._stopping.is_set():
                    stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                        api.list_namespaced_custom_object,
                        GROUP,
                        VERSION,
                        self.namespace,
                        plural,
                        resource_version=version,
                        timeout_seconds=5,
                        allow_watch_bookmarks=True,
                        _request_timeout=15,
                    )
                    for event in stream:
                        obj = event["object"]
                        version = obj.get("metadata", {}).get("resourceVersion", version)
                        if event["type"] == "ERROR":
                            raise ApiException(status=obj.get("code", 500), reason=obj.get("message", ""))
                        if event["type"] != "BOOKMARK":
                            self._apply(kind, event["type"], obj)
                        if self._stopping.is_set():
                            break
            except Exception as error:  # the watch must survive apiserver restarts and expired versions
                log.warning("watching %s in %s failed (%s); relisting", plural, self.namespace, error)
                self._stopping.wait(self.retry_seconds)

    def _replace(self, kind: str, items: list[dict[str, Any]]) -> None:
        with self._lock:
            self._objects[kind] = {item["metadata"]["name"]: item for item in items}
            self._listed.add(kind)
            self._rebuild()

    def _apply(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        with self._lock:
            if event_type == "DELETED":
                self._objects[kind].pop(name, None)
            else:
                self._objects[kind][name] = obj
            self._rebuild()

    def _rebuild(self) -> None:
        """Replace the catalog. Never raises: an exception here would make the watch re-list forever and
        leave serving without a catalog, so a failed rebuild keeps the previous views and reports why."""
        if self._listed != set(PLURALS):
            return
        documents = [obj for objects in self._objects.values() for obj in objects.values()]
        try:
            views, windows, problems = resources_from_documents(documents, f"namespace {self.namespace}")
            catalog = build_catalog(views, windows)
            catalog = Catalog(catalog.views, catalog.feature_sets, (*problems, *catalog.problems))
        except Exception as error:  # the isolation boundary of the watch, see above
            log.exception("rebuilding the feature catalog of %s failed", self.namespace)
            previous = self._catalog or Catalog({}, {})
            problem = f"namespace {self.namespace}: the feature catalog could not be rebuilt: {error}"
            kept = tuple(dict.fromkeys((*previous.problems, problem)))
            catalog = Catalog(previous.views, previous.feature_sets, kept)
        if self._catalog is None or catalog.problems != self._catalog.problems:
            for problem in catalog.problems:
                log.warning("feature catalog: %s", problem)
        self._catalog = catalog
        log.info("feature catalog: %d views, %d feature sets", len(catalog.views), len(catalog.feature_sets))
