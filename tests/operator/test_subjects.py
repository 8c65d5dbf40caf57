"""Unit tests of registry-subject ownership across namespaces (pure: manifests in, owner out)."""

from typing import Any

from streamguard.operator import record
from streamguard.operator.record import SchemaRecord
from streamguard.operator.subjects import claims, desired_subject, other_users, owned_elsewhere, registered_subject


def window(
    namespace: str,
    name: str,
    created: str,
    subject: str | None = None,
    topic: str = "payments",
    registered: str | None = None,
    status_subject: str | None = None,
) -> dict[str, Any]:
    """``registered``: the subject the operator's record names; ``status_subject``: what status says."""
    contract: dict[str, Any] = {"schema": "{}"}
    if subject:
        contract["subject"] = subject
    body: dict[str, Any] = {
        "metadata": {"namespace": namespace, "name": name, "uid": f"{namespace}-{name}", "creationTimestamp": created},
        "spec": {"source": {"topic": topic}, "contract": contract},
        "status": {"subject": status_subject} if status_subject else {},
    }
    if registered:
        for operation in record.patch(body, SchemaRecord(registered, 1, 1, "f" * 64)):
            if operation["op"] == "add":
                body["metadata"]["annotations"] = operation["value"]
    return body


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


def test_a_recorded_claim_counts_even_when_the_spec_moved_on() -> None:
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


def test_status_claims_nothing_a_workload_could_forge() -> None:
    forger = window("team-a", "forger", "2026-01-01T00:00:00Z", status_subject="team-b.payments-value")
    victim = window("team-b", "w", "2026-01-02T00:00:00Z", registered="team-b.payments-value")
    assert claims("team-b.payments-value", [forger]) == []
    assert owned_elsewhere("team-b.payments-value", "team-b", [forger, victim]) is None
    assert [c.name for c in other_users("team-b.payments-value", "team-a-forger", [forger, victim])] == ["w"]


def test_the_subject_registered_is_the_recorded_one_else_the_specs_never_status() -> None:
    moved = window("team-a", "w", "2026-01-01T00:00:00Z", subject="new-value", registered="old-value",
                   status_subject="team-b.payments-value")
    assert registered_subject(moved) == "old-value"
    unrecorded = window("team-a", "w", "2026-01-01T00:00:00Z", status_subject="team-b.payments-value")
    assert registered_subject(unrecorded) == "team-a.payments-value"


def test_a_record_copied_onto_another_window_records_nothing() -> None:
    original = window("team-a", "w", "2026-01-01T00:00:00Z", registered="team-a.payments-value")
    assert record.read(original) == SchemaRecord("team-a.payments-value", 1, 1, "f" * 64)
    copy = window("team-c", "copy", "2026-01-02T00:00:00Z")
    copy["metadata"]["annotations"] = original["metadata"]["annotations"]
    assert record.read(copy) is None
    assert claims("team-a.payments-value", [copy]) == []


def test_a_malformed_record_is_no_record() -> None:
    body = window("team-a", "w", "2026-01-01T00:00:00Z")
    for text in ("not json", "[]", '{"uid": "team-a-w"}', '{"uid": "team-a-w", "subject": "s", "schemaId": true, '
                 '"schemaVersion": 1, "schemaFingerprint": "f"}'):
        body["metadata"]["annotations"] = {record.ANNOTATION: text}
        assert record.read(body) is None


def test_the_record_patch_adds_to_existing_annotations_guarded_by_uid() -> None:
    body = window("team-a", "w", "2026-01-01T00:00:00Z")
    body["metadata"]["annotations"] = {"other": "kept"}
    test, add = record.patch(body, SchemaRecord("s-value", 3, 2, "ab"))
    assert test == {"op": "test", "path": "/metadata/uid", "value": "team-a-w"}
    assert add["path"] == "/metadata/annotations/streamguard.dev~1registration"
    body["metadata"]["annotations"][record.ANNOTATION] = add["value"]
    assert record.read(body) == SchemaRecord("s-value", 3, 2, "ab")
