"""The operator's own record of the schema it registered for a StreamingWindow: an annotation on the window.

Status is written for people to read, and each workload's ServiceAccount may patch its own resource's status
(its Role grants ``<plural>/status``). So nothing the operator *decides* (which subject the finalizer deletes,
which window registered a subject, whether the contract must be registered again) may come from status. The
record lives in ``metadata.annotations``: no workload Role may patch the resource itself, and the apiserver
drops metadata changes sent to the status subresource. It names the window's uid, so a manifest copied with
its annotations onto another window records nothing there. Pure: reading and rendering the record.
"""

import json
from dataclasses import dataclass
from typing import Any

from streamguard.operator.render.common import Manifest

ANNOTATION = "streamguard.dev/registration"


@dataclass(frozen=True)
class SchemaRecord:
    """What the operator registered: ``subject`` holds the contract (``fingerprint``) as ``version`` (``id``)."""

    subject: str
    schema_id: int
    schema_version: int
    fingerprint: str

    def status_fields(self) -> dict[str, Any]:
        """The same facts as the status fields users read."""
        return {
            "subject": self.subject,
            "schemaId": self.schema_id,
            "schemaVersion": self.schema_version,
            "schemaFingerprint": self.fingerprint,
        }


def read(window: Manifest) -> SchemaRecord | None:
    """The window's record; ``None`` when there is none, it is malformed, or it was written for another uid."""
    meta = window["metadata"]
    text = (meta.get("annotations") or {}).get(ANNOTATION)
    if not text:
        return None
    try:
        value = json.loads(text)
        if not isinstance(value, dict) or value.get("uid") != meta.get("uid"):
            return None
        subject, schema_id, version, fingerprint = (
            value["subject"], value["schemaId"], value["schemaVersion"], value["schemaFingerprint"]
        )
    except (ValueError, KeyError):
        return None
    if not (isinstance(subject, str) and isinstance(fingerprint, str) and subject and fingerprint):
        return None
    if type(schema_id) is not int or type(version) is not int:
        return None
    return SchemaRecord(subject, schema_id, version, fingerprint)


def patch(window: Manifest, record: SchemaRecord) -> list[Manifest]:
    """The JSON patch writing ``record`` into the window's annotations (guarded by its uid)."""
    meta = window["metadata"]
    value = json.dumps({"uid": meta["uid"], **record.status_fields()}, sort_keys=True, separators=(",", ":"))
    test: Manifest = {"op": "test", "path": "/metadata/uid", "value": meta["uid"]}
    if not meta.get("annotations"):
        return [test, {"op": "add", "path": "/metadata/annotations", "value": {ANNOTATION: value}}]
    return [test, {"op": "add", "path": f"/metadata/annotations/{ANNOTATION.replace('/', '~1')}", "value": value}]
