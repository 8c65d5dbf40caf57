"""Unit tests of registry-subject ownership across namespaces (pure: manifests in, owner out)."""

from typing import Any

from streamguard.operator.subjects import claims, desired_subject, other_users, owned_elsewhere


def window(
    namespace: str,
    name: str,
    created: str,
    subject: str | None = None,
    topic: str = "payments",
    registered: str | None = None,
) -> dict[str, Any]:
    contract: dict[str, Any] = {"schema": "{}"}
    if subject:
        contract["subject"] = subject
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": f"{namespace}-{name}", "creationTimestamp": created},
        "spec": {"source": {"topic": topic}, "contract": contract},
        "status": {"subject": registered} if registered else {},
    }


def test_the_default_subject_carries_the_namespace() -> None:
    assert desired_subject(window("team-a", "w", "2026-01-01T00:00:00Z")) == "team-a.payments-value"
    assert desired_subject(window("team-a", "w", "2026-01-01T00:00:00Z", subject="shared-value")) == "shared-value"
    assert desired_subject({"metadata": {"namespace": "a"}, "spec": {}}) is None


def test_same_topic_in_two_namespaces_never_collides_by_default() -> None:
    windows = [window("team-a", "w", "2026-01-01T00:00:00Z"), window("team-b", "w", "2026-01-02T00:00:00Z")]
    assert owned_elsewhere("team-a.payments-value", "team-a", windows) is None
    assert owned_elsewhere("team-b.payments-value", "team-b", windows) is None


def test_a_subject_another_namespace_registered_is_refused_even_to_an_older_window() -> None:
    owner = window("team-a", "owner", "2026-01-05T00:00:00Z", subject="s-value", registered="s-value")
    older = window("team-b", "older", "2026-01-01T00:00:00Z", subject="s-value")
    found = owned_elsewhere("s-value", "team-b", [older, owner])
    assert found is not None and str(found) == "StreamingWindow team-a/owner"
    assert owned_elsewhere("s-value", "team-a", [older, owner]) is None


def test_unregistered_claims_go_to_the_oldest_and_its_namespace_shares() -> None:
    first = window("team-a", "first", "2026-01-01T00:00:00Z", subject="s-value")
    second = window("team-b", "second", "2026-01-02T00:00:00Z", subject="s-value")
    sibling = window("team-a", "sibling", "2026-01-03T00:00:00Z", subject="s-value")
    assert [c.name for c in claims("s-value", [sibling, second, first])] == ["first", "second", "sibling"]
    assert owned_elsewhere("s-value", "team-a", [sibling, second, first]) is None
    found = owned_elsewhere("s-value", "team-b", [sibling, second, first])
    assert found is not None and found.namespace == "team-a"


def test_a_status_claim_counts_even_when_the_spec_moved_on() -> None:
    moved = window("team-a", "moved", "2026-01-01T00:00:00Z", subject="new-value", registered="s-value")
    found = owned_elsewhere("s-value", "team-b", [moved, window("team-b", "w", "2026-01-02T00:00:00Z", "s-value")])
    assert found is not None and found.name == "moved" and found.registered


def test_other_users_span_namespaces_and_exclude_the_asker() -> None:
    refused = window("team-b", "refused", "2026-01-01T00:00:00Z", subject="s-value")
    owner = window("team-a", "owner", "2026-01-02T00:00:00Z", subject="s-value", registered="s-value")
    unrelated = window("team-c", "other", "2026-01-01T00:00:00Z")
    assert [str(c) for c in other_users("s-value", "team-b-refused", [refused, owner, unrelated])] == [
        "StreamingWindow team-a/owner"
    ]
    assert other_users("s-value", "team-a-owner", [owner, unrelated]) == []
