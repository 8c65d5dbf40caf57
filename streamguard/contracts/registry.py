"""A small client for the Confluent Schema Registry API (Apicurio's ``ccompat/v7`` speaks it).

Registration refused for compatibility (HTTP 409) raises :class:`IncompatibleSchemaError`, whose message
adds the offline explanation of :mod:`streamguard.contracts.compatibility` (which change breaks which
rule) to the registry's own words, which are often terse.
"""

import json
from dataclasses import dataclass
from typing import Any

import httpx

from streamguard.contracts.compatibility import CompatibilityLevel, Incompatibility, check, explain

_CONTENT = "application/vnd.schemaregistry.v1+json"


class RegistryError(RuntimeError):
    """The registry answered with an error; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class IncompatibleSchemaError(RegistryError):
    """The registry refused a schema (HTTP 409); ``violations`` say which change breaks which rule."""

    def __init__(self, subject: str, registry_message: str, violations: list[Incompatibility]) -> None:
        reason = explain(violations) if violations else "the registry gave no further detail"
        super().__init__(
            f"schema refused for subject {subject!r} (HTTP 409: {registry_message}): {reason}", status=409
        )
        self.subject = subject
        self.violations = violations


@dataclass(frozen=True)
class RegisteredSchema:
    subject: str
    version: int
    id: int
    schema: str


def normalized(schema: str) -> str:
    """Compact JSON text of a schema (what gets registered)."""
    return json.dumps(json.loads(schema), separators=(",", ":"), sort_keys=False)


class SchemaRegistry:
    """Synchronous client; ``base_url`` is the API root, e.g. ``http://host:port/apis/ccompat/v7``."""

    def __init__(self, base_url: str, timeout: float = 10.0, auth: tuple[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, auth=auth,
                                  headers={"Accept": _CONTENT, "Content-Type": _CONTENT})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "SchemaRegistry":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return self._http.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise RegistryError(f"schema registry {self.base_url} unreachable: {error}") from error

    @staticmethod
    def _message(response: httpx.Response) -> str:
        try:
            payload = response.json()
        except ValueError:
            return response.text[:500]
        return str(payload.get("message", payload)) if isinstance(payload, dict) else str(payload)

    def _fail(self, response: httpx.Response, what: str) -> RegistryError:
        return RegistryError(f"{what}: HTTP {response.status_code}: {self._message(response)}", response.status_code)

    def set_compatibility(self, level: CompatibilityLevel, subject: str | None = None) -> None:
        path = f"/config/{subject}" if subject else "/config"
        response = self._call("PUT", path, {"compatibility": level})
        if response.status_code >= 300:
            raise self._fail(response, f"setting compatibility {level} on {subject or 'the registry'}")

    def compatibility(self, subject: str) -> CompatibilityLevel:
        """The subject's level, else the registry's global level."""
        for path in (f"/config/{subject}", "/config"):
            response = self._call("GET", path)
            if response.status_code == 200:
                payload = response.json()
                level = payload.get("compatibilityLevel") or payload.get("compatibility")
                if level:
                    return str(level).upper()  # type: ignore[return-value]
        return "BACKWARD"

    def versions(self, subject: str) -> list[int]:
        response = self._call("GET", f"/subjects/{subject}/versions")
        if response.status_code == 404:
            return []
        if response.status_code >= 300:
            raise self._fail(response, f"listing versions of subject {subject!r}")
        return sorted(int(v) for v in response.json())

    def version(self, subject: str, version: int | str = "latest") -> RegisteredSchema:
        response = self._call("GET", f"/subjects/{subject}/versions/{version}")
        if response.status_code >= 300:
            raise self._fail(response, f"reading version {version} of subject {subject!r}")
        body = response.json()
        return RegisteredSchema(subject, int(body["version"]), int(body["id"]), str(body["schema"]))

    def history(self, subject: str) -> list[RegisteredSchema]:
        """Every registered version of ``subject``, oldest first."""
        return [self.version(subject, v) for v in self.versions(subject)]

    def schema_by_id(self, schema_id: int) -> str | None:
        """The schema text registered under ``schema_id``; ``None`` when the registry does not know it."""
        response = self._call("GET", f"/schemas/ids/{schema_id}")
        if response.status_code == 404:
            return None
        if response.status_code >= 300:
            raise self._fail(response, f"reading schema id {schema_id}")
        return str(response.json()["schema"])

    def register(self, subject: str, schema: str) -> RegisteredSchema:
        """Register ``schema`` (idempotent); a refusal on compatibility raises IncompatibleSchemaError."""
        response = self._call("POST", f"/subjects/{subject}/versions", {"schema": normalized(schema),
                                                                          "schemaType": "AVRO"})
        if response.status_code == 409:
            previous = [s.schema for s in self.history(subject)]
            violations = check(schema, previous, self.compatibility(subject)) if previous else []
            raise IncompatibleSchemaError(subject, self._message(response), violations)
        if response.status_code >= 300:
            raise self._fail(response, f"registering a schema under subject {subject!r}")
        schema_id = int(response.json()["id"])
        lookup = self._call("POST", f"/subjects/{subject}", {"schema": normalized(schema), "schemaType": "AVRO"})
        version = int(lookup.json().get("version", 0)) if lookup.status_code == 200 else 0
        return RegisteredSchema(subject, version, schema_id, normalized(schema))

    def delete_subject(self, subject: str) -> None:
        """Soft- then hard-delete ``subject`` (404 is success)."""
        for suffix in ("", "?permanent=true"):
            response = self._call("DELETE", f"/subjects/{subject}{suffix}")
            if response.status_code not in (200, 404):
                raise self._fail(response, f"deleting subject {subject!r}")
