"""The one Schema Registry client (the Confluent API; Apicurio serves it under :data:`API_PATH`).

Every call is written once, as a *procedure*: a generator that yields :class:`Request` s, receives each
``httpx.Response`` and parses it (paths, statuses, errors). :class:`SchemaRegistry` (sync: workloads,
``plan``, tests) and :class:`AsyncSchemaRegistry` (the operator) only drive procedures over their httpx
transport, so both speak the same paths, normalisation and error tree:

* :class:`RegistryError`: base of every failure.
* :class:`RegistryUnavailableError`: no answer (connection, timeout) or a server error; retry later.
* :class:`RegistryRejectedError`: a refusal (4xx) that retrying does not fix; ``status`` is the HTTP status
  (422: not a valid schema; 401/403: the client's credentials, the message naming the registry).
* :class:`NotRegisteredError`: the subject, version or id is unknown (only where absence is not an answer
  of its own: :meth:`~SchemaRegistry.lookup`, :meth:`~SchemaRegistry.schema_by_id`,
  :meth:`~SchemaRegistry.versions` return ``None`` / ``[]``).
* :class:`IncompatibleSchemaError`: the registry refused a schema for compatibility; the message adds the
  offline explanation of :mod:`streamguard.contracts.compatibility` (which change breaks which rule) to the
  registry's reasons, which are often terse.

Subjects always go into paths URL-quoted (``/`` included). The client lives in ``streamguard.contracts``
because the operator, the workloads and ``plan`` all call the registry, and this package imports none of them.
"""

import json
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import quote

import httpx

from streamguard.clientsecurity import RegistrySecurity
from streamguard.contracts import compatibility
from streamguard.contracts.compatibility import CompatibilityLevel

API_PATH = "/apis/ccompat/v7"
"""Where Apicurio serves the Confluent API: the registry URL is ``http://host:port`` + this."""
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
T = TypeVar("T")


class RegistryError(Exception):
    """A Schema Registry call failed; ``status`` is the HTTP status when the registry answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RegistryUnavailableError(RegistryError):
    """The registry could not be reached, timed out or answered with a server error: retry later."""


class RegistryRejectedError(RegistryError):
    """The registry refused the call (4xx) for a reason retrying does not fix."""


class NotRegisteredError(RegistryRejectedError):
    """The registry holds no such subject, version or schema id (HTTP 404)."""


class IncompatibleSchemaError(RegistryRejectedError):
    """The registry refused a schema for compatibility (HTTP 409). The message is the registry's reasons,
    then the offline ``violations`` (which change breaks which rule) when the previous versions were readable."""

    def __init__(self, subject: str, reasons: list[str], violations: list[compatibility.Incompatibility]) -> None:
        said = "; ".join(reasons) or "the registry gave no reason"
        super().__init__(f"{said} ({compatibility.explain(violations)})" if violations else said, status=409)
        self.subject = subject
        self.reasons = reasons
        self.violations = violations


@dataclass(frozen=True)
class RegisteredSchema:
    subject: str
    version: int
    id: int
    schema: str


@dataclass(frozen=True)
class Verdict:
    """The registry's compatibility verdict; ``messages`` may be empty even when incompatible (Apicurio)."""

    compatible: bool
    messages: list[str]


@dataclass(frozen=True)
class Request:
    operation: str
    """Counted in the client's ``calls`` (``lookup``, ``get_config``, ``set_config``, ``check``, ``register``,
    ``delete``, ``versions``, ``version``, ``schema``)."""
    method: str
    path: str
    body: dict[str, Any] | None = None
    params: dict[str, str] | None = None


Procedure = Generator[Request, httpx.Response, T]
"""A registry call: yields requests, is sent their responses, returns the parsed result."""


def normalized(schema: str) -> str:
    """Compact JSON text of a schema: what is registered, looked up and fingerprinted."""
    return json.dumps(json.loads(schema), separators=(",", ":"))


def subject_path(subject: str, *rest: str) -> str:
    """``/subjects/<subject>/<rest...>`` with the subject URL-quoted (``/``, ``?``, ``#``, ``%``, spaces)."""
    if not subject or subject in (".", ".."):
        raise ValueError(f"{subject!r} is not a usable registry subject")
    return "/".join(("/subjects", quote(subject, safe=""), *rest))


def config_path(subject: str | None) -> str:
    """The subject's compatibility setting, or the registry's default when ``subject`` is ``None``."""
    return "/config" if subject is None else "/config" + subject_path(subject)[len("/subjects"):]


def reason(response: httpx.Response) -> str:
    """The registry's own words for an error answer."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        messages = body.get("messages")
        if messages:
            return "; ".join(str(m) for m in messages)
        return str(body.get("message") or body)
    return str(body)


def raise_for(response: httpx.Response, what: str) -> None:
    """Map an error answer to the error tree (server errors never get here: the transports raise
    :class:`RegistryUnavailableError` for them)."""
    status = response.status_code
    if status < 400:
        return
    message = f"{what}: HTTP {status}: {reason(response)}"
    if status >= 500:
        raise RegistryUnavailableError(message, status)
    raise (NotRegisteredError if status == 404 else RegistryRejectedError)(message, status)


def _avro(schema: str) -> dict[str, Any]:
    return {"schema": schema, "schemaType": "AVRO"}


def set_compatibility(level: CompatibilityLevel, subject: str | None = None) -> Procedure[bool]:
    """Set ``level`` on ``subject`` (the registry's default when ``None``); ``False`` when the registry
    knows no such subject."""
    response = yield Request("set_config", "PUT", config_path(subject), {"compatibility": level})
    if response.status_code == 404 and subject is not None:
        return False
    raise_for(response, f"setting compatibility {level} on {repr(subject) if subject else 'the registry'}")
    return True


def get_compatibility(subject: str | None = None) -> Procedure[str | None]:
    """The level set on ``subject`` itself (the registry's default when ``None``); ``None`` when unset."""
    response = yield Request("get_config", "GET", config_path(subject))
    if response.status_code == 404:
        return None
    raise_for(response, f"reading the compatibility of {repr(subject) if subject else 'the registry'}")
    body = response.json()
    level = body.get("compatibilityLevel") or body.get("compatibility")
    return str(level).upper() if level else None


def check(subject: str, schema: str) -> Procedure[Verdict]:
    """May ``schema`` follow the latest version of ``subject``? Compatible when the subject has no version.
    An invalid schema raises :class:`RegistryRejectedError` with status 422."""
    path = "/compatibility" + subject_path(subject, "versions", "latest")
    response = yield Request("check", "POST", path, _avro(normalized(schema)), {"verbose": "true"})
    if response.status_code == 404:
        return Verdict(True, [])
    if response.status_code == 409:
        return Verdict(False, [reason(response)])
    raise_for(response, f"compatibility check for {subject!r}")
    body = response.json()
    return Verdict(bool(body.get("is_compatible", False)), [str(m) for m in body.get("messages") or []])


def lookup(subject: str, schema: str) -> Procedure[RegisteredSchema | None]:
    """The version and id under which ``subject`` holds ``schema``; ``None`` when it does not hold it."""
    text = normalized(schema)
    response = yield Request("lookup", "POST", subject_path(subject), _avro(text))
    if response.status_code == 404:
        return None
    raise_for(response, f"looking up the registered schema of {subject!r}")
    body = response.json()
    return RegisteredSchema(subject, int(body["version"]), int(body["id"]), str(body.get("schema") or text))


def versions(subject: str) -> Procedure[list[int]]:
    """The versions of ``subject``, oldest first; ``[]`` when the registry knows no such subject."""
    response = yield Request("versions", "GET", subject_path(subject, "versions"))
    if response.status_code == 404:
        return []
    raise_for(response, f"listing the versions of {subject!r}")
    return sorted(int(v) for v in response.json())


def version(subject: str, number: int | str = "latest") -> Procedure[RegisteredSchema]:
    response = yield Request("version", "GET", subject_path(subject, "versions", str(number)))
    raise_for(response, f"reading version {number} of {subject!r}")
    body = response.json()
    return RegisteredSchema(subject, int(body["version"]), int(body["id"]), str(body["schema"]))


def history(subject: str) -> Procedure[list[RegisteredSchema]]:
    """Every registered version of ``subject``, oldest first."""
    found = []
    for number in (yield from versions(subject)):
        found.append((yield from version(subject, number)))
    return found


def schema_by_id(schema_id: int) -> Procedure[str | None]:
    """The schema text registered under ``schema_id``; ``None`` when the registry does not know it."""
    response = yield Request("schema", "GET", f"/schemas/ids/{int(schema_id)}")
    if response.status_code == 404:
        return None
    raise_for(response, f"reading schema id {schema_id}")
    return str(response.json()["schema"])


def _refusal(subject: str, schema: str, reasons: list[str]) -> Procedure[IncompatibleSchemaError]:
    """The error for a refused ``schema``, explained offline against the subject's versions."""
    try:
        previous = [registered.schema for registered in (yield from history(subject))]
    except NotRegisteredError:  # a version deleted meanwhile: the registry's reasons stand alone
        previous = []
    if not previous:
        return IncompatibleSchemaError(subject, reasons, [])
    level = (yield from get_compatibility(subject)) or (yield from get_compatibility(None)) or "BACKWARD"
    try:
        violations = compatibility.check(schema, previous, cast(CompatibilityLevel, level))
    except compatibility.SchemaParseError:
        violations = []
    return IncompatibleSchemaError(subject, reasons, violations)


def register(subject: str, schema: str) -> Procedure[RegisteredSchema]:
    """BACKWARD on the subject, a compatibility test, the registration (idempotent for a schema the subject
    holds), BACKWARD again for a new subject, then a lookup of what the registry now holds.

    A registry that answers the test with a bare ``is_compatible: false`` (Apicurio) still refuses the
    registration itself with HTTP 409 and the reason, so the attempt is what reports why.
    """
    text = normalized(schema)
    existed = yield from set_compatibility("BACKWARD", subject)
    if existed:
        verdict = yield from check(subject, text)
        if not verdict.compatible and verdict.messages:
            raise (yield from _refusal(subject, text, verdict.messages))
    response = yield Request("register", "POST", subject_path(subject, "versions"), _avro(text))
    if response.status_code == 409:
        raise (yield from _refusal(subject, text, [reason(response)]))
    raise_for(response, f"registering a schema under {subject!r}")
    if not existed:
        yield from set_compatibility("BACKWARD", subject)
    found = yield from lookup(subject, text)
    if found is None:
        raise RegistryRejectedError(f"the registry does not hold the schema of {subject!r} it has just registered")
    return found


def delete_subject(subject: str, permanent: bool = False) -> Procedure[bool]:
    """Soft delete (its versions stay recoverable), then hard delete when ``permanent`` (also of a subject
    soft-deleted before). ``False`` when there was nothing to delete."""
    deleted = False
    for params in ({}, {"permanent": "true"}) if permanent else ({},):
        response = yield Request("delete", "DELETE", subject_path(subject), params=params or None)
        if response.status_code != 404:
            raise_for(response, f"{'permanently ' if params else ''}deleting subject {subject!r}")
            deleted = True
    return deleted


class _Transport:
    """What the sync and async clients share: the base URL, headers, request counts and error mapping."""

    def __init__(self, base_url: str) -> None:
        if not base_url:
            raise ValueError("no registry URL (set STREAMGUARD_REGISTRY_URL)")
        self.base_url = base_url.rstrip("/")
        self.calls: Counter[str] = Counter()
        """Requests sent, by :attr:`Request.operation`."""

    def _options(self, request: Request) -> dict[str, Any]:
        self.calls[request.operation] += 1
        headers = {"Content-Type": CONTENT_TYPE} if request.body is not None else None
        return {"json": request.body, "params": request.params, "headers": headers}

    def _unreachable(self, request: Request, error: httpx.HTTPError) -> RegistryUnavailableError:
        return RegistryUnavailableError(
            f"schema registry {self.base_url} unreachable ({request.method} {request.path}): "
            f"{type(error).__name__}: {error}"
        )

    def _answered(self, request: Request, response: httpx.Response) -> httpx.Response:
        if response.status_code in (401, 403):
            raise RegistryRejectedError(
                f"schema registry {self.base_url} refused the client's credentials ({request.method} {request.path}): "
                f"HTTP {response.status_code}: {reason(response)}",
                response.status_code,
            )
        if response.status_code >= 500:
            raise RegistryUnavailableError(
                f"schema registry {self.base_url} failed ({request.method} {request.path}): "
                f"HTTP {response.status_code}: {reason(response)}",
                response.status_code,
            )
        return response


class SchemaRegistry(_Transport):
    """Synchronous client; ``base_url`` is the API root, e.g. ``http://host:port/apis/ccompat/v7``."""

    def __init__(self, base_url: str, timeout: float = 10.0, security: RegistrySecurity | None = None) -> None:
        super().__init__(base_url)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers={"Accept": CONTENT_TYPE},
                                  **(security or RegistrySecurity()).httpx_options())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "SchemaRegistry":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def run(self, procedure: Procedure[T]) -> T:
        try:
            request = next(procedure)
            while True:
                try:
                    response = self._http.request(request.method, request.path, **self._options(request))
                except httpx.HTTPError as error:
                    raise self._unreachable(request, error) from error
                request = procedure.send(self._answered(request, response))
        except StopIteration as done:
            return cast(T, done.value)

    def set_compatibility(self, level: CompatibilityLevel, subject: str | None = None) -> bool:
        return self.run(set_compatibility(level, subject))

    def compatibility(self, subject: str | None = None) -> str | None:
        return self.run(get_compatibility(subject))

    def check(self, subject: str, schema: str) -> Verdict:
        return self.run(check(subject, schema))

    def register(self, subject: str, schema: str) -> RegisteredSchema:
        return self.run(register(subject, schema))

    def lookup(self, subject: str, schema: str) -> RegisteredSchema | None:
        return self.run(lookup(subject, schema))

    def versions(self, subject: str) -> list[int]:
        return self.run(versions(subject))

    def version(self, subject: str, number: int | str = "latest") -> RegisteredSchema:
        return self.run(version(subject, number))

    def history(self, subject: str) -> list[RegisteredSchema]:
        return self.run(history(subject))

    def schema_by_id(self, schema_id: int) -> str | None:
        return self.run(schema_by_id(schema_id))

    def delete_subject(self, subject: str, permanent: bool = False) -> bool:
        return self.run(delete_subject(subject, permanent))


class AsyncSchemaRegistry(_Transport):
    """The same calls over ``httpx.AsyncClient`` (the operator)."""

    def __init__(self, base_url: str, timeout: float = 5.0, security: RegistrySecurity | None = None) -> None:
        super().__init__(base_url)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, headers={"Accept": CONTENT_TYPE},
            **(security or RegistrySecurity()).httpx_options(),
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def run(self, procedure: Procedure[T]) -> T:
        try:
            request = next(procedure)
            while True:
                try:
                    response = await self._http.request(request.method, request.path, **self._options(request))
                except httpx.HTTPError as error:
                    raise self._unreachable(request, error) from error
                request = procedure.send(self._answered(request, response))
        except StopIteration as done:
            return cast(T, done.value)

    async def set_compatibility(self, level: CompatibilityLevel, subject: str | None = None) -> bool:
        return await self.run(set_compatibility(level, subject))

    async def compatibility(self, subject: str | None = None) -> str | None:
        return await self.run(get_compatibility(subject))

    async def check(self, subject: str, schema: str) -> Verdict:
        return await self.run(check(subject, schema))

    async def register(self, subject: str, schema: str) -> RegisteredSchema:
        return await self.run(register(subject, schema))

    async def lookup(self, subject: str, schema: str) -> RegisteredSchema | None:
        return await self.run(lookup(subject, schema))

    async def versions(self, subject: str) -> list[int]:
        return await self.run(versions(subject))

    async def version(self, subject: str, number: int | str = "latest") -> RegisteredSchema:
        return await self.run(version(subject, number))

    async def history(self, subject: str) -> list[RegisteredSchema]:
        return await self.run(history(subject))

    async def schema_by_id(self, schema_id: int) -> str | None:
        return await self.run(schema_by_id(schema_id))

    async def delete_subject(self, subject: str, permanent: bool = False) -> bool:
        return await self.run(delete_subject(subject, permanent))
