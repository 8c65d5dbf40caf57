"""Ready follows StreamRunning after a grace period: the pure judgement and the grace default."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamguard.api.streamingwindow import StreamingWindowSpec
from streamguard.operator import streamhealth
from streamguard.operator.settings import OperatorSettings
from tests.operator import manifests

NOW = datetime(2026, 12, 1, 6, 0, 0, tzinfo=UTC)


def running(status: str, seconds_ago: float, reason: str = "TopicMissing", message: str = "no topic 'x'") -> Any:
    since = (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        {"type": "Ready", "status": "True", "reason": "ChildrenReady"},
        {"type": "StreamRunning", "status": status, "reason": reason, "message": message, "lastTransitionTime": since},
    ]


def spec(**changes: Any) -> StreamingWindowSpec:
    return StreamingWindowSpec.model_validate({**manifests.streaming_window()["spec"], **changes})


def test_grace_defaults_to_twice_the_trigger_interval_plus_a_minute() -> None:
    assert streamhealth.grace_seconds(spec(), OperatorSettings()) == 2 * 1 + 60  # the default trigger: 1 s
    assert streamhealth.grace_seconds(spec(triggerInterval="1m"), OperatorSettings()) == 180
    assert streamhealth.grace_seconds(spec(), OperatorSettings(stream_grace_seconds=7)) == 7


@pytest.mark.parametrize("status", ["True", "Unknown"])
def test_running_or_unknown_is_not_down(status: str) -> None:
    assert streamhealth.judge(running(status, 3600), NOW, 70) == streamhealth.StreamHealth()


def test_no_condition_is_not_down() -> None:
    assert streamhealth.judge([], NOW, 70) == streamhealth.StreamHealth()


def test_false_within_grace_asks_to_look_again_when_it_ends() -> None:
    health = streamhealth.judge(running("False", 30), NOW, 70)
    assert health.down is None
    assert health.recheck_seconds == pytest.approx(41)


def test_false_beyond_grace_is_down_with_the_jobs_reason_and_message() -> None:
    health = streamhealth.judge(running("False", 71, "DeadLettering", "12% of records dead-lettered"), NOW, 70)
    assert health.down == streamhealth.StreamDown(
        "DeadLettering", "StreamRunning=False since 2026-12-01T05:58:49Z: 12% of records dead-lettered"
    )
    assert health.recheck_seconds is None


def test_unreadable_transition_time_waits_a_full_grace() -> None:
    conditions = [{"type": "StreamRunning", "status": "False", "reason": "QueryFailed"}]
    health = streamhealth.judge(conditions, NOW, 70)
    assert health.down is None and health.recheck_seconds == pytest.approx(71)


def test_a_restarting_job_does_not_restart_the_grace_period() -> None:
    """A crash-looping job writes a fresh transition time on every start; the operator's record keeps the episode."""
    recorded = (NOW - timedelta(seconds=600)).strftime("%Y-%m-%dT%H:%M:%SZ")
    health = streamhealth.judge(running("False", 10), NOW, 70, recorded)
    assert health.down is not None and health.since == recorded
    assert health.down.message.startswith(f"StreamRunning=False since {recorded}: ")
    first = streamhealth.judge(running("False", 10), NOW, 70)
    assert first.down is None and first.since == (NOW - timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_running_again_ends_the_episode() -> None:
    assert streamhealth.judge(running("True", 5), NOW, 70, "2026-12-01T05:00:00Z").since is None
