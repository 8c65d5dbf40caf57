"""Offline Avro schema compatibility, following the Avro specification's schema resolution rules.

``check(new, previous, level)`` answers what a Confluent-compatible registry would answer for a subject
with that compatibility level, without a registry, and says *which* change breaks *which* rule. Rule
names are those of Avro's ``SchemaCompatibility`` (and Confluent's error messages):
``READER_FIELD_MISSING_DEFAULT_VALUE``, ``TYPE_MISMATCH``, ``NAME_MISMATCH``, ``FIXED_SIZE_MISMATCH``,
``MISSING_ENUM_SYMBOLS``, ``MISSING_UNION_BRANCH``.

BACKWARD means the new schema can read data written with the previous one (consumers upgrade first);
FORWARD the reverse; FULL both. The ``_TRANSITIVE`` levels check every previous version, the others only
the latest.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

CompatibilityLevel = Literal[
    "NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"
]

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
"""Writer type -> reader types it may be promoted to."""


class SchemaParseError(ValueError):
    """The text is not an Avro schema; the message says where."""


@dataclass(frozen=True)
class Incompatibility:
    """One broken rule: ``path`` locates the change (``Transaction.amount``), ``rule`` names the rule."""

    rule: str
    path: str
    message: str
    direction: str = "BACKWARD"
    """Which reading failed: BACKWARD (new reads previous) or FORWARD (previous reads new)."""
    previous_version: int | None = None

    def __str__(self) -> str:
        version = f" (previous version {self.previous_version})" if self.previous_version is not None else ""
        return f"{self.direction}{version}: {self.path}: {self.rule}: {self.message}"


class _Schema:
    """A parsed schema: a canonical tree plus the table of its named types."""

    def __init__(self, source: str | dict[str, Any] | list[Any]) -> None:
        try:
            raw = json.loads(source) if isinstance(source, str) else source
        except json.JSONDecodeError as error:
            raise SchemaParseError(f"schema is not valid JSON: {error}") from error
        self.names: dict[str, dict[str, Any]] = {}
        self.root = self._canon(raw, "", "$")

    def _fullname(self, name: str, namespace: str) -> str:
        return name if "." in name or not namespace else f"{namespace}.{name}"

    def _canon(self, node: Any, namespace: str, where: str) -> dict[str, Any]:
        if isinstance(node, str):
            if node in PRIMITIVES:
                return {"type": node}
            full = self._fullname(node, namespace)
            if full not in self.names and node not in self.names:
                raise SchemaParseError(f"{where}: unknown type {node!r}")
            return {"type": "ref", "name": full if full in self.names else node}
        if isinstance(node, list):
            branches = [self._canon(b, namespace, f"{where}[{i}]") for i, b in enumerate(node)]
            return {"type": "union", "branches": branches}
        if not isinstance(node, dict) or "type" not in node:
            raise SchemaParseError(f"{where}: expected a type name, a union or an object with 'type'")
        kind = node["type"]
        if isinstance(kind, dict | list) or (isinstance(kind, str) and kind not in _NAMED | {"array", "map"}):
            return self._canon(kind, namespace, where)
        if kind == "array":
            return {"type": "array", "items": self._canon(node.get("items"), namespace, f"{where}.items")}
        if kind == "map":
            return {"type": "map", "values": self._canon(node.get("values"), namespace, f"{where}.values")}
        name = node.get("name")
        if not isinstance(name, str):
            raise SchemaParseError(f"{where}: a {kind} needs a 'name'")
        full = self._fullname(name, node.get("namespace", namespace))
        inner_ns = full.rpartition(".")[0]
        aliases = {self._fullname(a, inner_ns) for a in node.get("aliases", [])}
        named: dict[str, Any] = {"type": "record" if kind == "error" else kind, "name": full, "aliases": aliases}
        self.names[full] = named
        if kind == "enum":
            named["symbols"] = list(node.get("symbols", []))
            named["default"] = node.get("default")
        elif kind == "fixed":
            named["size"] = node.get("size")
        else:
            fields = []
            for field in node.get("fields", []):
                if not isinstance(field, dict) or not isinstance(field.get("name"), str):
                    raise SchemaParseError(f"{full}: every field needs a 'name'")
                fields.append(
                    {
                        "name": field["name"],
                        "aliases": set(field.get("aliases", [])),
                        "has_default": "default" in field,
                        "schema": self._canon(field.get("type"), inner_ns, f"{full}.{field['name']}"),
                    }
                )
            named["fields"] = fields
        return {"type": "ref", "name": full}

    def deref(self, node: dict[str, Any]) -> dict[str, Any]:
        return self.names[node["name"]] if node["type"] == "ref" else node


def _short(name: str) -> str:
    return name.rpartition(".")[2]


def _describe(schema: _Schema, node: dict[str, Any]) -> str:
    node = schema.deref(node)
    if node["type"] == "union":
        return "union [" + ", ".join(_describe(schema, b) for b in node["branches"]) + "]"
    if node["type"] in _NAMED:
        return f"{node['type']} {_short(node['name'])}"
    return str(node["type"])


class _Resolver:
    """Can data written with ``writer`` be read with ``reader``? Collects every violation."""

    def __init__(self, reader: _Schema, writer: _Schema) -> None:
        self.reader, self.writer = reader, writer
        self.found: list[tuple[str, str, str]] = []
        self._visiting: set[tuple[str, str]] = set()

    def _names_match(self, r: dict[str, Any], w: dict[str, Any]) -> bool:
        return bool(r["name"] == w["name"] or w["name"] in r["aliases"] or _short(r["name"]) == _short(w["name"]))

    def readable(self, r_node: dict[str, Any], w_node: dict[str, Any]) -> bool:
        """True when resolution succeeds (records violations only through :meth:`check`)."""
        probe = _Resolver(self.reader, self.writer)
        probe._visiting = set(self._visiting)
        probe.check(r_node, w_node, "")
        return not probe.found

    def check(self, r_node: dict[str, Any], w_node: dict[str, Any], path: str) -> None:
        r, w = self.reader.deref(r_node), self.writer.deref(w_node)
        if w["type"] == "union":
            for branch in w["branches"]:
                ok = (
                    any(self.readable(rb, branch) for rb in r["branches"])
                    if r["type"] == "union"
                    else self.readable(r, branch)
                )
                if not ok:
                    self.found.append(
                        (
                            "MISSING_UNION_BRANCH",
                            path,
                            f"the writer's union branch {_describe(self.writer, branch)} has no matching type in "
                            f"the reader's {_describe(self.reader, r)}",
                        )
                    )
            return
        if r["type"] == "union":
            if not any(self.readable(rb, w) for rb in r["branches"]):
                self.found.append(
                    (
                        "MISSING_UNION_BRANCH",
                        path,
                        f"the reader's {_describe(self.reader, r)} has no branch for the writer's "
                        f"{_describe(self.writer, w)}",
                    )
                )
            return
        if r["type"] != w["type"]:
            if w["type"] in PRIMITIVES and r["type"] in PROMOTIONS.get(w["type"], frozenset()):
                return
            self.found.append(
                (
                    "TYPE_MISMATCH",
                    path,
                    f"type changed from {_describe(self.writer, w)} to {_describe(self.reader, r)}; "
                    "only int->long/float/double, long->float/double, float->double and string<->bytes "
                    "are permitted promotions",
                )
            )
            return
        kind = r["type"]
        if kind in PRIMITIVES:
            return
        if kind == "array":
            self.check(r["items"], w["items"], f"{path}[]")
            return
        if kind == "map":
            self.check(r["values"], w["values"], f"{path}{{}}")
            return
        if not self._names_match(r, w):
            self.found.append(
                ("NAME_MISMATCH", path, f"{kind} renamed from {w['name']} to {r['name']} without an alias")
            )
            return
        here = path or _short(r["name"])
        if kind == "fixed":
            if r["size"] != w["size"]:
                self.found.append(("FIXED_SIZE_MISMATCH", here, f"fixed size changed from {w['size']} to {r['size']}"))
            return
        if kind == "enum":
            missing = [s for s in w["symbols"] if s not in r["symbols"]]
            if missing and r.get("default") is None:
                self.found.append(
                    (
                        "MISSING_ENUM_SYMBOLS",
                        here,
                        f"symbols {', '.join(missing)} were removed and the reader's enum has no default",
                    )
                )
            return
        pair = (r["name"], w["name"])
        if pair in self._visiting:
            return
        self._visiting.add(pair)
        by_name = {f["name"]: f for f in w["fields"]}
        for field in r["fields"]:
            written = by_name.get(field["name"]) or next(
                (by_name[a] for a in field["aliases"] if a in by_name), None
            )
            where = f"{here}.{field['name']}"
            if written is None:
                if not field["has_default"]:
                    self.found.append(
                        (
                            "READER_FIELD_MISSING_DEFAULT_VALUE",
                            where,
                            "field added without a default: records written with the other schema carry no "
                            "value for it (give it a default, e.g. a nullable type with default null)",
                        )
                    )
                continue
            self.check(field["schema"], written["schema"], where)
        self._visiting.discard(pair)


def parse(schema: str | dict[str, Any] | list[Any]) -> None:
    """Raise :class:`SchemaParseError` when ``schema`` is not a well-formed Avro schema."""
    _Schema(schema)


def can_read(reader: str | dict[str, Any], writer: str | dict[str, Any]) -> list[Incompatibility]:
    """Violations met when reading data written with ``writer`` using ``reader`` (empty: compatible)."""
    resolver = _Resolver(_Schema(reader), _Schema(writer))
    resolver.check(resolver.reader.root, resolver.writer.root, "")
    return [Incompatibility(rule, path or "(root)", message) for rule, path, message in resolver.found]


def check(
    new: str | dict[str, Any],
    previous: Sequence[str | dict[str, Any]],
    level: CompatibilityLevel = "BACKWARD",
) -> list[Incompatibility]:
    """What a registry with ``level`` would object to when ``new`` is registered after ``previous``
    (oldest first). Returns every violation, each naming its path, rule and direction."""
    if level == "NONE" or not previous:
        return []
    checked = list(enumerate(previous, start=1))
    if not level.endswith("_TRANSITIVE"):
        checked = checked[-1:]
    found: list[Incompatibility] = []
    for version, old in checked:
        if level.startswith(("BACKWARD", "FULL")):
            found += [
                Incompatibility(i.rule, i.path, i.message, "BACKWARD", version) for i in can_read(new, old)
            ]
        if level.startswith(("FORWARD", "FULL")):
            found += [Incompatibility(i.rule, i.path, i.message, "FORWARD", version) for i in can_read(old, new)]
    return found


def explain(found: Sequence[Incompatibility]) -> str:
    """One line per violation, for error messages and conditions."""
    return "; ".join(str(i) for i in found) if found else "compatible"
