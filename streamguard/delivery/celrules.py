"""The CRDs' CEL rules (``x-kubernetes-validations``) evaluated offline with cel-python.

With a cluster, a server-side dry-run lets the apiserver judge them; without one (``plan --empty``,
``validate``) this walks the generated CRD schema alongside the object and evaluates every rule with
``self`` bound to its node, so a window whose length is not a multiple of its slide is refused offline too.
A rule cel-python cannot evaluate is reported as a note, never as a pass or a failure.
"""

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import celpy
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.celtypes import BoolType
from celpy.evaluation import CELEvalError

from streamguard.api.crdgen import KINDS, crd
from streamguard.delivery.resources import Problem, Resource


@dataclass
class CelResult:
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@cache
def _schema(kind: str) -> dict[str, Any]:
    info = next(i for i in KINDS if i.kind == kind)
    schema: dict[str, Any] = crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@cache
def _program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def _walk(schema: dict[str, Any], value: Any, path: str, where: str, result: CelResult) -> None:
    for rule in schema.get("x-kubernetes-validations", []):
        try:
            verdict = _program(rule["rule"]).evaluate({"self": json_to_cel(value)})
        except (CELEvalError, CELParseError) as error:
            result.notes.append(f"{where} {path}: rule {rule['rule']!r} not evaluated offline ({error.args[0]})")
            continue
        if isinstance(verdict, BoolType) and not bool(verdict):
            result.problems.append(Problem(where, rule["message"], path + rule.get("fieldPath", ""), "schema"))
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                _walk(sub, value[name], f"{path}.{name}", where, result)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, item in value.items():
                if name not in (schema.get("properties") or {}):
                    _walk(extra, item, f"{path}.{name}", where, result)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _walk(schema["items"], item, f"{path}[{index}]", where, result)


def check(resource: Resource) -> CelResult:
    """Every CEL rule of the resource's CRD, evaluated on its (defaulted) spec."""
    result = CelResult()
    spec_schema = _schema(resource.key.kind)["properties"]["spec"]
    _walk(spec_schema, resource.spec, ".spec", str(resource.key), result)
    return result
