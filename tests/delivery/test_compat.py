"""BACKWARD compatibility of Avro contracts: offline rules, and agreement with the real registry."""

import json
import uuid
from typing import Any

import httpx
import pytest

from streamguard.contracts.registry import SchemaRegistry
from streamguard.delivery.compat import ContractError, backward_offline, backward_registry

BASE: dict[str, Any] = {
    "type": "record",
    "name": "Transaction",
    "namespace": "dev.streamguard.tests",
    "fields": [
        {"name": "account_id", "type": "string"},
        {"name": "amount", "type": "float"},
        {"name": "count", "type": "int"},
        {"name": "channel", "type": {"type": "enum", "name": "Channel", "symbols": ["WEB", "POS", "ATM"]}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "ref", "type": ["null", "string", "long"], "default": None},
    ],
}


def edited(**changes: Any) -> dict[str, Any]:
    """BASE with fields replaced (name -> new field or None to drop) and extra fields appended."""
    fields = []
    for field in BASE["fields"]:
        if field["name"] in changes:
            if changes[field["name"]] is not None:
                fields.append(changes[field["name"]])
        else:
            fields.append(field)
    fields += [f for name, f in changes.items() if f is not None and name not in {g["name"] for g in BASE["fields"]}]
    return {**BASE, "fields": fields}


# (case, new schema, compatible, broken rule)
CASES: list[tuple[str, dict[str, Any], bool, str | None]] = [
    ("unchanged", BASE, True, None),
    ("add optional field with default", edited(mcc={"name": "mcc", "type": ["null", "string"], "default": None}),
     True, None),
    ("drop a field", edited(note=None), True, None),
    ("promote int to long", edited(count={"name": "count", "type": "long"}), True, None),
    ("promote float to double", edited(amount={"name": "amount", "type": "double"}), True, None),
    ("add field without default", edited(mcc={"name": "mcc", "type": "string"}), False,
     "READER_FIELD_MISSING_DEFAULT_VALUE"),
    ("narrow float to int", edited(amount={"name": "amount", "type": "int"}), False, "TYPE_MISMATCH"),
    ("change string to int", edited(account_id={"name": "account_id", "type": "int"}), False, "TYPE_MISMATCH"),
    ("remove enum symbol", edited(channel={"name": "channel", "type": {"type": "enum", "name": "Channel",
                                                                       "symbols": ["WEB", "POS"]}}),
     False, "MISSING_ENUM_SYMBOLS"),
    ("drop union branch", edited(ref={"name": "ref", "type": ["null", "string"], "default": None}), False,
     "MISSING_UNION_BRANCH"),
    ("union to its only used type", edited(note={"name": "note", "type": "string", "default": ""}), False,
     "MISSING_UNION_BRANCH"),
]


@pytest.mark.parametrize(("case", "new", "compatible", "rule"), CASES, ids=[c[0] for c in CASES])
def test_offline_rules(case: str, new: dict[str, Any], compatible: bool, rule: str | None) -> None:
    result = backward_offline("s", json.dumps(new), json.dumps(BASE), "git HEAD")
    assert result.compatible is compatible, case
    if rule is None:
        assert result.issues == []
    else:
        assert rule in {i.rule for i in result.issues}
        issue = next(i for i in result.issues if i.rule == rule)
        assert issue.location.startswith(".")
        assert rule in issue.describe() and "(" in issue.describe()


def test_incompatibility_names_the_field() -> None:
    result = backward_offline("s", json.dumps(edited(mcc={"name": "mcc", "type": "string"})), json.dumps(BASE), "x")
    assert [(i.rule, i.location) for i in result.issues] == [("READER_FIELD_MISSING_DEFAULT_VALUE", ".mcc")]
    assert "added without a default" in result.issues[0].message and ".mcc" in result.issues[0].describe()


def test_invalid_schema_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match="not a valid Avro schema"):
        backward_offline("s", '{"type": "record", "name": "X", "fields": [{"name": "a"}]}', json.dumps(BASE), "x")


@pytest.mark.stack
@pytest.mark.parametrize(("case", "new", "compatible", "rule"), CASES, ids=[c[0] for c in CASES])
def test_offline_verdict_agrees_with_the_registry(
    registry_url: str, case: str, new: dict[str, Any], compatible: bool, rule: str | None
) -> None:
    subject = f"delivery-compat-{uuid.uuid4().hex[:12]}-value"
    config = httpx.put(f"{registry_url}/config/{subject}", json={"compatibility": "BACKWARD"}, timeout=10)
    assert config.status_code == 200, config.text
    registered = httpx.post(f"{registry_url}/subjects/{subject}/versions", json={"schema": json.dumps(BASE)},
                            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"}, timeout=10)
    assert registered.status_code == 200, registered.text
    with SchemaRegistry(registry_url) as registry:
        verdict = backward_registry(registry, subject, json.dumps(new))
    assert verdict is not None
    assert verdict.compatible is compatible, f"{case}: registry says {verdict}"
    assert backward_offline(subject, json.dumps(new), json.dumps(BASE), "x").compatible is verdict.compatible


@pytest.mark.stack
def test_registry_check_of_a_new_subject_is_none(registry_url: str) -> None:
    with SchemaRegistry(registry_url) as registry:
        assert backward_registry(registry, f"delivery-new-{uuid.uuid4().hex[:12]}-value", json.dumps(BASE)) is None


@pytest.mark.stack
def test_registry_verdict_on_an_invalid_schema_names_it(registry_url: str) -> None:
    subject = f"delivery-invalid-{uuid.uuid4().hex[:12]}-value"
    with SchemaRegistry(registry_url) as registry:
        registry.register(subject, json.dumps(BASE))
        try:
            invalid = json.dumps({"type": "record", "name": "X", "fields": [{"name": "a", "type": "Missing"}]})
            verdict = backward_registry(registry, subject, invalid)
        finally:
            registry.delete_subject(subject, permanent=True)
    assert verdict is not None and not verdict.compatible
    assert [issue.rule for issue in verdict.issues] == ["INVALID_SCHEMA"] and "HTTP 422" in verdict.issues[0].message
