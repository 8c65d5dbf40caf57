"""Unit tests of the demo's pure renderers."""

from pathlib import Path

from streamguard.demo.manifests import (
    DATA_VOLUME,
    isolate,
    load_examples,
    placement_policy,
    platform,
    subject,
    topics,
)
from streamguard.demo.run import DemoState
from streamguard.devstack.node import NODE_NAME

REPO = Path(__file__).resolve().parents[2]


def test_isolate_renames_project_topic_and_subject_only() -> None:
    docs = load_examples(REPO / "examples" / "finserve")
    isolated = isolate(docs, "abc123")
    assert topics(isolated) == [f"{t}-abc123" for t in topics(docs)]
    for before, after in zip(docs, isolated, strict=True):
        assert after["metadata"] == before["metadata"]
        if after["kind"] == "FeatureView":
            assert after["spec"]["project"] == before["spec"]["project"] + "abc123"
        if after["kind"] == "StreamingWindow":
            assert after["spec"]["contract"]["subject"] == after["spec"]["source"]["topic"] + "-value"
    assert docs != isolated


def test_platform_wires_the_redis_secret_into_serving() -> None:
    objects = platform("finserve", "redis://10.244.1.1:6379/0", "localhost/streamguard:abc", Path("/data"))
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert ("Secret", "streamguard-redis") in kinds
    assert ("ServiceAccount", "streamguard-workload") in kinds
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "localhost/streamguard:abc" and container["imagePullPolicy"] == "Never"
    env = {e["name"]: e for e in container["env"]}
    assert env["STREAMGUARD_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "streamguard-redis"
    assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "streamguard"


def test_state_round_trips(tmp_path: Path) -> None:
    state = DemoState(namespace="finserve", stack_dir="/s", owns_stack=True, serving_port=8080,
                      node_name="n", topic="t", demo_dir=str(tmp_path))
    state.save(tmp_path)
    assert DemoState.load(tmp_path) == state
    assert state.serving_url == "http://127.0.0.1:8080"


def test_demo_commands_without_a_demo_say_what_to_run(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from streamguard.demo.cli import command

    result = CliRunner().invoke(command, ["status"], env={"STREAMGUARD_DEMO_DIR": str(tmp_path)})
    assert result.exit_code == 1
    assert "run `streamguard demo up` first" in result.output


def test_the_producer_subject_is_the_windows_own() -> None:
    docs = load_examples(REPO / "examples" / "finserve")
    assert subject(docs, "finserve") == "finserve.transactions-value"  # the example names it
    for doc in docs:
        if doc["kind"] == "StreamingWindow":
            del doc["spec"]["contract"]["subject"]
    assert subject(docs, "team-a") == "team-a.finserve.transactions-value"
    assert subject([d for d in docs if d["kind"] != "StreamingWindow"], "team-a") == ""


def test_the_placement_policy_is_bound_to_the_demo_namespace_only() -> None:
    policy, binding = placement_policy("finserve", Path("/work/demo/.run/data"))
    assert binding["spec"]["policyName"] == policy["metadata"]["name"] == "streamguard-demo-finserve"
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "finserve"}}
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["pods"]
    expressions = " ".join(m.get("jsonPatch", m.get("applyConfiguration", {}))["expression"]
                           for m in policy["spec"]["mutations"])
    assert "tolerations" not in expressions, "the node has no taint to tolerate"
    for needed in (NODE_NAME, DATA_VOLUME, '"/work/demo/.run/data"', "/home/streamguard/.run/data",
                   "readOnly: true"):
        assert needed in expressions, needed
