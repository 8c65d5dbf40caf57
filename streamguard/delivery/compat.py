"""Avro contract compatibility: BACKWARD (a consumer on the new schema reads data written with the old).

Two sources of truth, same answer shape: the Schema Registry's own check against the subject's latest
version (:meth:`streamguard.contracts.registry.SchemaRegistry.check`) when a registry is reachable, and offline
the Avro specification's schema-resolution rules (:mod:`streamguard.contracts.compatibility`) against the
previous contract.
Each offline incompatibility names the rule it breaks, the location in the schema and what to do.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from streamguard.contracts import compatibility
from streamguard.contracts.registry import RegistryRejectedError, SchemaRegistry

RULE_HINTS: dict[str, str] = {
    "READER_FIELD_MISSING_DEFAULT_VALUE": "a field added to the new schema needs a default, "
    "otherwise records written with the old schema cannot be read",
    "TYPE_MISMATCH": "a field's type changed to one the old type cannot be promoted to "
    "(allowed: int->long/float/double, long->float/double, float->double, string<->bytes, T->union with T)",
    "MISSING_UNION_BRANCH": "a union lost a branch that old records may hold",
    "MISSING_ENUM_SYMBOLS": "an enum lost a symbol that old records may hold (or give the enum a default)",
    "NAME_MISMATCH": "a named type (record, enum, fixed) was renamed without an alias for the old name",
    "FIXED_SIZE_MISMATCH": "a fixed type changed size",
}


@dataclass(frozen=True)
class Incompatibility:
    rule: str
    location: str
    message: str

    def describe(self) -> str:
        hint = RULE_HINTS.get(self.rule, "")
        return f"{self.rule} at {self.location}: {self.message}" + (f" ({hint})" if hint else "")


@dataclass
class CompatResult:
    """Outcome of one BACKWARD check. ``against`` says what the new contract was compared with."""

    subject: str
    against: str
    compatible: bool
    issues: list[Incompatibility] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


class ContractError(ValueError):
    """The contract is not a valid Avro schema."""


def parse(schema_text: str) -> None:
    """Check that ``schema_text`` is Avro schema JSON; raise :class:`ContractError` with the reason."""
    try:
        compatibility.parse(schema_text)
    except compatibility.SchemaParseError as error:
        raise ContractError(f"not a valid Avro schema: {error}") from error


def record_fields(schema_text: str) -> dict[str, Any]:
    """Top-level field name -> Avro type (JSON form) of a record schema."""
    schema = json.loads(schema_text)
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise ContractError("the contract must be an Avro record")
    return {f["name"]: f["type"] for f in schema.get("fields", [])}


def backward_offline(subject: str, new_text: str, old_text: str, against: str) -> CompatResult:
    """The new schema reads data written with the old one (the Avro specification's resolution rules,
    :mod:`streamguard.contracts.compatibility`). Locations are field paths below the record (``.amount``)."""
    parse(new_text)
    parse(old_text)
    issues = [Incompatibility(found.rule, _location(found.path), found.message)
              for found in compatibility.can_read(new_text, old_text)]
    return CompatResult(subject, against, not issues, issues, [i.describe() for i in issues])


def _location(path: str) -> str:
    """``Payment.payer.country`` -> ``.payer.country``; the record itself -> ``/``."""
    _, _, below = path.partition(".")
    return f".{below}" if below else "/"


def backward_registry(registry: SchemaRegistry, subject: str, schema_text: str) -> CompatResult | None:
    """The registry's verdict for ``schema_text`` against the latest version of ``subject``.

    ``None`` when the subject does not exist yet (any valid schema may be its first version). Raises
    :class:`~streamguard.contracts.registry.RegistryError` when the registry gives no verdict.
    """
    # Some registries (Apicurio) call any schema compatible with a subject that does not exist.
    if not registry.versions(subject):
        return None
    against = f"registry {registry.base_url}"
    try:
        verdict = registry.check(subject, schema_text)
    except RegistryRejectedError as error:
        if error.status != 422:
            raise
        return CompatResult(subject, against, False, [Incompatibility("INVALID_SCHEMA", "/", str(error))])
    issues = [] if verdict.compatible else [Incompatibility("BACKWARD", "/", m) for m in verdict.messages] or [
        Incompatibility("BACKWARD", "/", "the registry refused the schema as incompatible")]
    return CompatResult(subject, f"{against} (latest version)", verdict.compatible, issues, verdict.messages)
