"""The Schema Registry calls a StreamingWindow needs (Confluent API, e.g. Apicurio's ``/apis/ccompat/v7``):
enforce BACKWARD on the subject, test compatibility, register, look a registered schema up again (to verify
what status records), and (soft-)delete the subject on cleanup."""

from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


@dataclass(frozen=True)
class Registration:
    subject: str
    id: int
    version: int


class RegistryUnavailableError(Exception):
    """The registry could not be reached or answered with a server error: retry later."""


class IncompatibleSchemaError(Exception):
    """The registry refused the schema; the message is the registry's reason."""


class RegistryError(Exception):
    """Any other refusal (4xx) the operator cannot fix by retrying."""


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        messages = body.get("messages")
        if messages:
            return "; ".join(str(m) for m in messages)
        return str(body.get("message") or body)
    return str(body)


class Registry:
    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        if not base_url:
            raise ValueError("no registry URL (set STREAMGUARD_OPERATOR_REGISTRY_URL or STREAMGUARD_REGISTRY_URL)")
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, headers={"Accept": CONTENT_TYPE}
        )
        self.calls: Counter[str] = Counter()
        """Requests by operation (``lookup``, ``get_config``, ``set_config``, ``check``, ``register``, ``delete``)."""

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, operation: str, method: str, path: str, body: Any = None, **params: str) -> httpx.Response:
        self.calls[operation] += 1
        try:
            response = await self._client.request(
                method,
                path,
                json=body,
                params=params or None,
                headers={"Content-Type": CONTENT_TYPE} if body is not None else None,
            )
        except httpx.HTTPError as error:
            raise RegistryUnavailableError(f"{method} {path}: {error!r}") from error
        if response.status_code >= 500:
            raise RegistryUnavailableError(f"{method} {path}: HTTP {response.status_code}: {_reason(response)}")
        return response

    async def set_backward(self, subject: str) -> bool:
        """Enforce BACKWARD compatibility; ``False`` when the subject does not exist yet."""
        response = await self._call(
            "set_config", "PUT", f"/config/{quote(subject, safe='')}", {"compatibility": "BACKWARD"}
        )
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise RegistryError(f"setting compatibility of {subject!r}: {_reason(response)}")
        return True

    async def check(self, subject: str, schema: str) -> list[str] | None:
        """``None`` when ``schema`` may follow the latest version; else the registry's reasons (maybe none)."""
        path = f"/compatibility/subjects/{quote(subject, safe='')}/versions/latest"
        response = await self._call("check", "POST", path, {"schema": schema, "schemaType": "AVRO"}, verbose="true")
        if response.status_code == 404:
            return None
        if response.status_code == 409:
            return [_reason(response)]
        if response.status_code >= 400:
            raise RegistryError(f"compatibility check for {subject!r}: {_reason(response)}")
        body = response.json()
        if body.get("is_compatible", False):
            return None
        return [str(m) for m in body.get("messages") or []]

    async def register(self, subject: str, schema: str) -> Registration:
        """BACKWARD first, then a compatibility test, then registration (idempotent for a known schema).

        A registry that answers the test with a bare ``is_compatible: false`` (Apicurio) still refuses the
        registration itself with HTTP 409 and the reason, so the attempt is what reports why.
        """
        existed = await self.set_backward(subject)
        if existed:
            reasons = await self.check(subject, schema)
            if reasons:
                raise IncompatibleSchemaError("; ".join(reasons))
        name = quote(subject, safe="")
        response = await self._call(
            "register", "POST", f"/subjects/{name}/versions", {"schema": schema, "schemaType": "AVRO"}
        )
        if response.status_code == 409:
            raise IncompatibleSchemaError(_reason(response))
        if response.status_code >= 400:
            raise RegistryError(f"registering {subject!r}: {_reason(response)}")
        if not existed:
            await self.set_backward(subject)
        found = await self.lookup(subject, schema)
        if found is None:
            raise RegistryError(f"the registry does not hold the schema of {subject!r} it has just registered")
        return found

    async def lookup(self, subject: str, schema: str) -> Registration | None:
        """The version and id under which ``subject`` holds ``schema``; ``None`` when it does not hold it."""
        name = quote(subject, safe="")
        response = await self._call("lookup", "POST", f"/subjects/{name}", {"schema": schema, "schemaType": "AVRO"})
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise RegistryError(f"looking up the registered schema of {subject!r}: {_reason(response)}")
        found = response.json()
        return Registration(subject=subject, id=int(found["id"]), version=int(found["version"]))

    async def compatibility(self, subject: str) -> str | None:
        """The compatibility level set on ``subject`` itself; ``None`` when it has none of its own."""
        response = await self._call("get_config", "GET", f"/config/{quote(subject, safe='')}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise RegistryError(f"reading the compatibility of {subject!r}: {_reason(response)}")
        body = response.json()
        level = body.get("compatibilityLevel") or body.get("compatibility")
        return str(level) if level else None

    async def delete_subject(self, subject: str, permanent: bool = False) -> bool:
        """Soft delete (then hard delete when ``permanent``); ``False`` when the subject was already gone."""
        name = quote(subject, safe="")
        response = await self._call("delete", "DELETE", f"/subjects/{name}")
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise RegistryError(f"deleting subject {subject!r}: {_reason(response)}")
        if not permanent:
            return True
        hard = await self._call("delete", "DELETE", f"/subjects/{name}", permanent="true")
        if hard.status_code >= 400 and hard.status_code != 404:
            raise RegistryError(f"permanently deleting subject {subject!r}: {_reason(hard)}")
        return True
