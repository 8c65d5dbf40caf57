"""The FinServe Avro contracts, the offline compatibility check and the Confluent wire format."""

import json

import pytest

from streamguard.contracts import compatibility, wire
from tests.workloads.streaming.support import V1, V2, V3


def _record(fields: list[dict[str, object]], name: str = "R") -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "t", "fields": fields})


def _rules(found: list[compatibility.Incompatibility]) -> set[tuple[str, str]]:
    return {(i.rule, i.path) for i in found}


def test_every_field_of_every_contract_is_documented() -> None:
    for text in (V1, V2, V3):
        schema = json.loads(text)
        assert schema["doc"]
        undocumented = [f["name"] for f in schema["fields"] if not f.get("doc")]
        assert undocumented == []


def test_v2_is_backward_compatible_with_v1() -> None:
    assert compatibility.check(V2, [V1], "BACKWARD") == []
    assert compatibility.check(V2, [V1], "FULL") == []


def test_v3_breaks_named_rules_at_named_fields() -> None:
    found = compatibility.check(V3, [V1, V2], "BACKWARD")
    assert _rules(found) == {
        ("TYPE_MISMATCH", "Transaction.amount"),
        ("READER_FIELD_MISSING_DEFAULT_VALUE", "Transaction.merchant_category"),
    }
    assert all(i.previous_version == 2 and i.direction == "BACKWARD" for i in found)
    text = compatibility.explain(found)
    assert "double to string" in text and "merchant_category" in text


def test_transitive_levels_check_every_previous_version() -> None:
    old = _record([{"name": "a", "type": "int"}])
    mid = _record([{"name": "a", "type": "int"}, {"name": "b", "type": "string", "default": ""}])
    new = _record([{"name": "b", "type": "string"}])
    assert compatibility.check(new, [old, mid], "BACKWARD") == []
    transitive = compatibility.check(new, [old, mid], "BACKWARD_TRANSITIVE")
    assert _rules(transitive) == {("READER_FIELD_MISSING_DEFAULT_VALUE", "R.b")}
    assert transitive[0].previous_version == 1


@pytest.mark.parametrize(
    ("writer_type", "reader_type", "rule"),
    [
        ("int", "long", None),
        ("long", "double", None),
        ("string", "bytes", None),
        ("long", "int", "TYPE_MISMATCH"),
        (["null", "string"], "string", "MISSING_UNION_BRANCH"),
        ("string", ["null", "string"], None),
        ({"type": "enum", "name": "E", "symbols": ["A", "B"]}, {"type": "enum", "name": "E", "symbols": ["A"]},
         "MISSING_ENUM_SYMBOLS"),
        ({"type": "enum", "name": "E", "symbols": ["A", "B"]},
         {"type": "enum", "name": "E", "symbols": ["A", "Z"], "default": "Z"}, None),
        ({"type": "fixed", "name": "F", "size": 4}, {"type": "fixed", "name": "F", "size": 8}, "FIXED_SIZE_MISMATCH"),
        ({"type": "fixed", "name": "F", "size": 4}, {"type": "fixed", "name": "G", "size": 4}, "NAME_MISMATCH"),
        ({"type": "array", "items": "int"}, {"type": "array", "items": "long"}, None),
        ({"type": "map", "values": "string"}, {"type": "map", "values": "int"}, "TYPE_MISMATCH"),
    ],
)
def test_resolution_rules(writer_type: object, reader_type: object, rule: str | None) -> None:
    found = compatibility.can_read(_record([{"name": "x", "type": reader_type}]),
                                   _record([{"name": "x", "type": writer_type}]))
    assert [i.rule for i in found] == ([rule] if rule else [])
    assert all(i.path.startswith("R.x") for i in found)


def test_renamed_field_with_alias_and_recursive_types() -> None:
    writer = _record([{"name": "old", "type": "int"}, {"name": "next", "type": ["null", "R"], "default": None}])
    reader = _record([{"name": "new", "type": "long", "aliases": ["old"]},
                      {"name": "next", "type": ["null", "R"], "default": None}])
    assert compatibility.can_read(reader, writer) == []


def test_malformed_schema_is_a_parse_error_naming_the_place() -> None:
    with pytest.raises(compatibility.SchemaParseError, match="unknown type 'Missing'"):
        compatibility.parse(_record([{"name": "x", "type": "Missing"}]))
    with pytest.raises(compatibility.SchemaParseError, match="not valid JSON"):
        compatibility.parse("{nope")


def test_wire_format_round_trip_and_errors() -> None:
    framed = wire.frame(258, b"body")
    assert framed == b"\x00\x00\x00\x01\x02body"
    assert wire.unframe(framed) == (258, b"body")
    with pytest.raises(wire.WireFormatError, match="magic byte 1"):
        wire.schema_id(b"\x01\x00\x00\x00\x01")
    with pytest.raises(wire.WireFormatError, match="shorter"):
        wire.schema_id(b"\x00\x00")
