"""Pure: bounded durations in the API models, and the CRD's CEL rules agreeing with the Python checks."""

import re
from typing import Any

import celpy
import pytest
from celpy.adapter import json_to_cel
from pydantic import ValidationError

from streamguard.api.driftmonitor import DriftMonitorSpec
from streamguard.api.durations import (
    DURATION_PATTERN,
    GO_DURATION_PATTERN,
    duration_check,
    duration_rules,
    parse_duration,
)
from streamguard.api.featureview import FeatureViewSpec
from streamguard.api.streamingwindow import StreamingWindowSpec
from tests.operator import manifests

SAMPLES = [
    "0s", "1ms", "999ms", "1s", "15s", "2m", "1h30m", "8784h", "8784h1ms", "8785h", "527040m", "366d", "367d",
    "0d", "90d", "9999999999d", "99999999999999h", "000000000000001s", "31622400000ms", "31622400001ms",
]


def test_durations_never_overflow() -> None:
    assert parse_duration("366d").days == 366
    for text in ("9999999999d", "367d", "8785h", "99999999999999999999999ms"):
        with pytest.raises(ValueError, match="longer than the maximum of 366 days"):
            parse_duration(text)


def _errors(model: Any, body: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return {".".join(map(str, e["loc"])): e["msg"] for e in caught.value.errors()}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ttl", "0s", "must be greater than 0"),
        ("ttl", "0d", "must be greater than 0"),
        ("ttl", "9999999999d", "longer than the maximum of 366 days"),
        ("freshnessSla", "0s", "must be greater than 0"),
        ("freshnessSla", "400d", "longer than the maximum of 366 days"),
    ],
)
def test_featureview_durations_are_bounded(field: str, value: str, message: str) -> None:
    assert message in _errors(FeatureViewSpec, {**manifests.feature_view()["spec"], field: value})[field]


@pytest.mark.parametrize(
    ("edit", "loc", "message"),
    [
        ({"windows": [{"length": "30s", "slide": "1ms"}]}, "windows.0.slide", "shorter than the minimum of 1s"),
        ({"windows": [{"length": "30s", "slide": "7s"}]}, "windows.0", "whole multiple of its slide"),
        ({"watermark": "8785h"}, "watermark", "longer than the maximum of 366 days"),
        ({"triggerInterval": "99999999999999h"}, "triggerInterval", "longer than the maximum of 366 days"),
    ],
)
def test_streamingwindow_durations_are_bounded(edit: dict[str, Any], loc: str, message: str) -> None:
    errors = _errors(StreamingWindowSpec, {**manifests.streaming_window()["spec"], **edit})
    assert message in errors[loc], errors


def test_driftmonitor_durations_are_bounded() -> None:
    spec = manifests.drift_monitor()["spec"]
    assert "must be greater than 0" in _errors(DriftMonitorSpec, {**spec, "interval": "0s"})["interval"]
    current = {**spec["current"], "last": "400d"}
    assert "366 days" in _errors(DriftMonitorSpec, {**spec, "current": current})["current.last"]


def _cel(rule: str, value: str) -> bool:
    env = celpy.Environment()
    return bool(env.program(env.compile(rule)).evaluate({"self": json_to_cel(value)}))


@pytest.mark.parametrize(
    ("days", "minimum", "positive"),
    [(False, None, False), (False, None, True), (False, "1s", False), (True, None, True)],
)
@pytest.mark.parametrize("value", SAMPLES)
def test_the_crd_rules_and_the_python_check_agree(days: bool, minimum: str | None, positive: bool, value: str) -> None:
    """Both sides share the field's pattern; beyond it the CEL rules accept exactly what the Python check does."""
    matches = bool(re.match(DURATION_PATTERN if days else GO_DURATION_PATTERN, value))
    try:
        duration_check(minimum, positive).func(value)  # type: ignore[call-arg]
        python_accepts = matches
    except ValueError:
        python_accepts = False
    rules = [rule for rule in duration_rules(days, minimum, positive) if isinstance(rule, dict)]
    assert (matches and all(_cel(str(rule["rule"]), value) for rule in rules)) == python_accepts
