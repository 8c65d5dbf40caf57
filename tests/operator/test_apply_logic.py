"""The pure half of the apply layer: when a live object already matches what would be applied."""

import copy
from typing import Any

from streamguard.operator.apply import contains, up_to_date, with_applied_hash

DESIRED: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "s", "namespace": "n", "labels": {"a": "b"}},
    "spec": {"ports": [{"name": "metrics", "port": 9108, "targetPort": "metrics"}]},
}


def served(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the apiserver returns: our fields plus defaults and bookkeeping."""
    live = copy.deepcopy(manifest)
    live["metadata"].update(uid="u", resourceVersion="7", managedFields=[])
    live["spec"]["ports"][0]["protocol"] = "TCP"
    live["spec"].update(clusterIP="10.0.0.9", type="ClusterIP")
    return live


def test_server_defaults_do_not_count_as_drift() -> None:
    desired = with_applied_hash(DESIRED)
    assert up_to_date(desired, served(desired))


def test_missing_or_edited_objects_are_reapplied() -> None:
    desired = with_applied_hash(DESIRED)
    assert not up_to_date(desired, None)
    edited = served(desired)
    edited["spec"]["ports"][0]["port"] = 80
    assert not up_to_date(desired, edited)


def test_a_removed_field_changes_the_hash() -> None:
    before = with_applied_hash(DESIRED)
    smaller = copy.deepcopy(DESIRED)
    del smaller["metadata"]["labels"]
    after = with_applied_hash(smaller)
    assert contains(after["spec"], served(before)["spec"])
    assert not up_to_date(after, served(before))


def test_lists_must_match_in_length() -> None:
    assert not contains([1, 2], [1, 2, 3])
    assert contains([{"a": 1}], [{"a": 1, "b": 2}])
    assert not contains({"a": 1}, {"b": 1})
