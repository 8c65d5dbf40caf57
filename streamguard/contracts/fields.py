"""What the top-level fields of an Avro record contract hold, and which of them can be aggregated.

``sum``, ``avg``, ``min`` and ``max`` need a numeric field: ``int``, ``long``, ``float`` or ``double``,
optionally in a union with ``null``. A logical type on top (``decimal``, ``timestamp-millis``, ``date``…)
is not numeric for this purpose: Spark decodes decimals as ``DecimalType`` and timestamps as timestamps,
and the streaming job aggregates doubles.
"""

from typing import Any

NUMERIC = frozenset({"int", "long", "float", "double"})


def _branch_name(branch: Any) -> str:
    """``long``, ``long:timestamp-millis``, ``bytes:decimal``, ``record``, or the name of a named type."""
    if isinstance(branch, dict):
        base = branch.get("type")
        logical = branch.get("logicalType")
        base_name = base if isinstance(base, str) else "complex"
        return f"{base_name}:{logical}" if logical else base_name
    return str(branch)


def field_types(schema: Any) -> dict[str, list[str]]:
    """Top-level field name -> the non-null type names it can hold (``base:logicalType`` for logical types)."""
    if not isinstance(schema, dict):
        return {}
    out: dict[str, list[str]] = {}
    for field in schema.get("fields", []):
        if not isinstance(field, dict) or not isinstance(field.get("name"), str):
            continue
        kind = field.get("type")
        branches = kind if isinstance(kind, list) else [kind]
        out[field["name"]] = [name for name in map(_branch_name, branches) if name != "null"]
    return out


def is_numeric(types: list[str]) -> bool:
    """Exactly one non-null type, and a plain numeric one."""
    return len(types) == 1 and types[0] in NUMERIC


def describe(types: list[str]) -> str:
    """``a string``, ``a bytes with logicalType decimal``, ``a union of string and double``."""

    def one(name: str) -> str:
        base, _, logical = name.partition(":")
        return f"{base} with logicalType {logical}" if logical else base

    if not types:
        return "always null"
    if len(types) == 1:
        return f"a {one(types[0])}"
    return "a union of " + " and ".join(map(one, types))
