"""Where a view's watermark (``materializedUntil``) and the online store generation it belongs to live
between runs.

Normally in the FeatureView's status (:class:`KubeStatus`: ``materializedUntil`` and
``onlineStoreGeneration``); without an apiserver (``--no-status``) in a Redis string
(:class:`RedisWatermark`, which a flush removes along with the data) or a JSON file
(:class:`FileWatermark`).
"""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

from streamguard.api.common import GROUP, VERSION
from streamguard.api.kinds import FEATURE_VIEW
from streamguard.kubeclient import apply_status
from streamguard.onlinestore.client import Store
from streamguard.onlinestore.freshness import watermark_key
from streamguard.workloads.materialize.status import FIELD_MANAGER, RunReport, render_status


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Watermarks(Protocol):
    def load(self) -> datetime | None:
        """The end of the last successful run, if any."""

    @property
    def generation(self) -> str | None:
        """The online store generation recorded with the watermark :meth:`load` returned."""

    def record(self, report: RunReport) -> None:
        """Store the outcome of a run (the watermark only moves on success)."""


class KubeStatus:
    """The FeatureView's status subresource, written by server-side apply."""

    def __init__(self, api_client: Any, namespace: str, name: str, generation: int) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.api = client.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.name = name
        self.object_generation = generation
        self._status: dict[str, Any] = {}

    def _get(self) -> dict[str, Any]:
        obj = self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, FEATURE_VIEW.plural, self.name)
        return cast(dict[str, Any], obj)

    def load(self) -> datetime | None:
        obj = self._get()
        status: dict[str, Any] = obj.get("status") or {}
        self._status = status
        self.object_generation = int(obj.get("metadata", {}).get("generation") or self.object_generation)
        until = status.get("materializedUntil")
        return parse_time(until) if until else None

    @property
    def generation(self) -> str | None:
        value = self._status.get("onlineStoreGeneration")
        return str(value) if value else None

    def record(self, report: RunReport) -> None:
        body = render_status(self.name, self.namespace, self.object_generation, report, self._status)
        apply_status(self.api_client, FEATURE_VIEW, body, FIELD_MANAGER)


def _payload(report: RunReport, previous: datetime | None, previous_generation: str | None) -> dict[str, Any]:
    until = report.materialized_until if report.ok else previous
    return {
        "materializedUntil": until.isoformat() if until else None,
        "generation": report.generation if report.ok else previous_generation,
        "ok": report.ok,
        "reason": report.reason,
        "message": report.message,
        "finishedAt": report.finished_at.isoformat(),
        "rows": report.rows,
        "freshnessSeconds": report.freshness_seconds,
    }


class _JsonWatermark:
    """The watermark as a JSON document kept outside the cluster (``--no-status`` runs)."""

    def __init__(self) -> None:
        self._loaded: datetime | None = None
        self._generation: str | None = None

    def _read(self) -> str | None:
        raise NotImplementedError

    def _write(self, text: str) -> None:
        raise NotImplementedError

    def load(self) -> datetime | None:
        raw = self._read()
        saved = json.loads(raw) if raw else {}
        until = saved.get("materializedUntil")
        self._loaded = parse_time(until) if until else None
        self._generation = saved.get("generation")
        return self._loaded

    @property
    def generation(self) -> str | None:
        return self._generation

    def record(self, report: RunReport) -> None:
        self._write(json.dumps(_payload(report, self._loaded, self._generation), indent=2) + "\n")


class RedisWatermark(_JsonWatermark):
    """A JSON string at :func:`~streamguard.onlinestore.freshness.watermark_key` (``project``: the store project)."""

    def __init__(self, client: Store, project: str, view: str) -> None:
        super().__init__()
        self.client = client
        self.key = watermark_key(project, view)

    def _read(self) -> str | None:
        raw = cast(bytes | None, self.client.get(self.key))
        return raw.decode() if raw else None

    def _write(self, text: str) -> None:
        self.client.set(self.key, text)


class FileWatermark(_JsonWatermark):
    """A JSON file (for runs by hand without a cluster)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _read(self) -> str | None:
        return self.path.read_text() if self.path.exists() else None

    def _write(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(text)
