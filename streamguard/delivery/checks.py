"""Checks across resources and against their Avro contracts, on the state a folder declares.

The pydantic models (and the CRDs generated from them) validate one object at a time; what breaks
between objects is checked here: a window or monitor pointing at a view that will not exist, a monitor
watching features the view does not have, an aggregation over a field the contract lacks.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streamguard.api.driftmonitor import DriftMonitorSpec
from streamguard.api.featureview import FeatureViewSpec
from streamguard.api.streamingwindow import AGGREGATIONS_NEEDING_FIELD, StreamingWindowSpec
from streamguard.delivery.compat import ContractError, parse, record_fields
from streamguard.delivery.resources import Key, Problem, Resource

NUMERIC = {"int", "long", "float", "double"}


@dataclass
class CheckResult:
    problems: list[Problem] = field(default_factory=list)


def _branches(avro_type: Any) -> list[Any]:
    return avro_type if isinstance(avro_type, list) else [avro_type]


def _type_name(avro_type: Any) -> str:
    return avro_type.get("type", "?") if isinstance(avro_type, dict) else str(avro_type)


def _is_numeric(avro_type: Any) -> bool:
    names = {_type_name(b) for b in _branches(avro_type)} - {"null"}
    return bool(names) and names <= NUMERIC


def contract_problems(key: Key, spec: StreamingWindowSpec) -> list[Problem]:
    """The contract parses as an Avro record holding every field the window reads."""
    where = str(key)
    try:
        parse(spec.contract.schema_)
        fields = record_fields(spec.contract.schema_)
    except (ContractError, json.JSONDecodeError) as error:
        return [Problem(where, str(error), ".spec.contract.schema", "contract")]
    problems = []
    for attr, name in (("keyField", spec.key_field), ("eventTimeField", spec.event_time_field)):
        if name not in fields:
            problems.append(Problem(where, f"the contract has no field {name!r}", f".spec.{attr}", "contract"))
    for index, agg in enumerate(spec.aggregations):
        if agg.function not in AGGREGATIONS_NEEDING_FIELD or agg.field is None:
            continue
        path = f".spec.aggregations[{index}].field"
        if agg.field not in fields:
            problems.append(Problem(where, f"aggregation {agg.name!r} reads {agg.field!r}, which the contract lacks",
                                    path, "contract"))
        elif not _is_numeric(fields[agg.field]):
            problems.append(Problem(
                where, f"aggregation {agg.name!r} ({agg.function}) needs a numeric field; {agg.field!r} is "
                f"{json.dumps(fields[agg.field])}", path, "contract"))
    return problems


def _spec(resource: Resource, model: type[Any]) -> Any:
    return model.model_validate(resource.spec)


def cross_check(resources: Iterable[Resource]) -> CheckResult:
    """References between the resources of the final state (what the folder declares).

    Windows and monitors are judged by the operator's own checks (:mod:`streamguard.operator.render`), so
    the plan refuses exactly what the operator would mark ``Stalled``; the contract checks above report
    every problem of a contract rather than the first.
    """
    from streamguard.operator.render import driftmonitor as monitor_render
    from streamguard.operator.render import streamingwindow as window_render

    result = CheckResult()
    items = sorted(resources, key=lambda i: i.key.sort_key)
    views: dict[tuple[str, str], FeatureViewSpec] = {
        (r.key.namespace, r.key.name): _spec(r, FeatureViewSpec) for r in items if r.key.kind == "FeatureView"
    }
    written: dict[tuple[str, str, str], Key] = {}
    for r in items:
        problem = None
        if r.key.kind == "StreamingWindow":
            window: StreamingWindowSpec = _spec(r, StreamingWindowSpec)
            contract = contract_problems(r.key, window)
            result.problems.extend(contract)
            if not contract:
                problem = window_render.check(window, window.feature_view,
                                              views.get((r.key.namespace, window.feature_view)))
            for feature in window.feature_names():
                slot = (r.key.namespace, window.feature_view, feature)
                if slot in written:
                    result.problems.append(Problem(str(r.key), f"feature {feature!r} of view {window.feature_view!r}"
                                                   f" is also written by {written[slot]}", ".spec.aggregations",
                                                   "reference"))
                written[slot] = r.key
        elif r.key.kind == "DriftMonitor":
            monitor: DriftMonitorSpec = _spec(r, DriftMonitorSpec)
            problem = monitor_render.check(monitor, monitor.feature_view,
                                           views.get((r.key.namespace, monitor.feature_view)))
        if problem is not None:
            path, _, message = problem.message.partition(": ")
            result.problems.append(Problem(str(r.key), f"{message or path} [{problem.reason}]",
                                           f".{path}" if message else "", "operator"))
    return result
