"""Field-level diffs and the created / changed / deleted set (pure logic)."""

import json

from streamguard.delivery.diff import Action, compare, field_diff
from streamguard.delivery.planner import partition_problems, risks
from streamguard.delivery.resources import Key, Resource


def test_scalar_change_names_the_path() -> None:
    changes = field_diff({"ttl": "1d", "online": True}, {"ttl": "2d", "online": True}, ".spec")
    assert [(c.path, c.old, c.new) for c in changes] == [(".spec.ttl", "1d", "2d")]


def test_named_lists_are_compared_by_name() -> None:
    old = [{"name": "a", "dtype": "INT64"}, {"name": "b", "dtype": "FLOAT64"}]
    new = [{"name": "x", "dtype": "INT64"}, {"name": "a", "dtype": "INT64"}, {"name": "b", "dtype": "INT32"}]
    described = [c.describe() for c in field_diff(old, new, ".features")]
    assert described == [
        '~ .features[name=b].dtype: "FLOAT64" -> "INT32"',
        '+ .features[name=x]: {"dtype": "INT64", "name": "x"}',
    ]


def test_reordering_named_items_is_reported_as_order_only() -> None:
    old = [{"name": "a"}, {"name": "b"}]
    changes = field_diff(old, list(reversed(old)), ".windows")
    assert [c.path for c in changes] == [".windows (order)"]


def test_json_strings_are_diffed_as_json() -> None:
    schema = {"type": "record", "name": "T", "fields": [{"name": "id", "type": "string"}]}
    edited = {**schema, "fields": [*schema["fields"], {"name": "amount", "type": "double"}]}
    changes = field_diff(json.dumps(schema), json.dumps(edited, indent=2), ".schema")
    assert [c.describe() for c in changes] == ['+ .schema.fields[name=amount]: {"name": "amount", "type": "double"}']
    assert [c.path for c in field_diff(json.dumps(schema), json.dumps(schema, indent=4), ".s")] == [".s (formatting)"]


def test_compare_orders_views_first_and_classifies() -> None:
    def res(kind: str, name: str, spec: dict[str, object]) -> Resource:
        key = Key(kind, "ns", name)
        return Resource(key, spec, {})

    desired = {r.key: r for r in (res("StreamingWindow", "w", {"a": 1}), res("FeatureView", "v", {"a": 2}),
                                  res("FeatureView", "same", {"a": 3}))}
    live = {r.key: r for r in (res("FeatureView", "v", {"a": 1}), res("FeatureView", "same", {"a": 3}),
                               res("DriftMonitor", "gone", {}))}
    plan = compare(desired, live)
    assert [(c.key.kind, c.key.name, c.action) for c in plan] == [
        ("FeatureView", "same", Action.UNCHANGED),
        ("FeatureView", "v", Action.CHANGE),
        ("StreamingWindow", "w", Action.CREATE),
        ("DriftMonitor", "gone", Action.DELETE),
    ]
    assert [f.describe() for f in plan[1].fields] == ["~ .spec.a: 1 -> 2"]


def test_partition_changes_warn_when_raised_and_break_when_lowered() -> None:
    def window(partitions: int | None) -> Resource:
        source: dict[str, object] = {"topic": "tx"}
        if partitions is not None:
            source["partitions"] = partitions
        return Resource(Key("StreamingWindow", "ns", "w"), {"source": source}, {})

    def plan(old: int | None, new: int | None) -> tuple[list[str], list[str]]:
        changes = compare({window(new).key: window(new)}, {window(old).key: window(old)})
        return risks(changes), [str(p) for p in partition_problems(changes)]

    raised, problems = plan(3, 6)
    assert problems == [] and len(raised) == 1
    assert raised[0].startswith("StreamingWindow ns/w: .spec.source.partitions may raise the topic's partitions")
    managed, problems = plan(None, 6)
    assert problems == [] and len(managed) == 1, "an unmanaged topic becoming managed may grow too"
    warnings, lowered = plan(6, 2)
    assert warnings == []
    assert lowered == [
        "StreamingWindow ns/w .spec.source.partitions: lowers the topic's partitions from 6 to 2; Kafka cannot, "
        "and the operator refuses (Stalled, PartitionDecreaseRefused)"
    ]
    assert plan(6, None) == ([], []), "unmanaging a topic leaves it as it is"
    assert plan(6, 6) == ([], [])
