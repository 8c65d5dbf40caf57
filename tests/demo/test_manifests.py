"""Unit tests of the demo's pure renderers."""

import json
from pathlib import Path

import pytest

from streamguard.demo.manifests import (
    isolate,
    load_examples,
    object_store_operator_env,
    on_object_store,
    platform,
    subject,
    topics,
)
from streamguard.demo.run import DemoState
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.objectstore import S3Identity, identities_config
from streamguard.objectstore import SECRET_KEYS
from streamguard.operator.settings import OperatorSettings

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


def _endpoints(tmp_path: Path) -> Endpoints:
    identities = tmp_path / "s3-identities.json"
    identities.write_text(json.dumps(identities_config(S3Identity("AKIDDEMO", "SHHHDEMO"))))
    return Endpoints(run_dir=str(tmp_path), kubeconfig="", apiserver="", kafka_bootstrap="", registry_url="",
                     redis_url="", bin_dir="", s3_endpoint="http://127.0.0.1:8333",
                     pod_s3_endpoint="http://10.244.1.1:8333", s3_bucket="streamguard", s3_identities=str(identities))


def test_platform_wires_the_redis_secret_into_serving(tmp_path: Path) -> None:
    objects = platform("finserve", "redis://10.244.1.1:6379/0", "localhost/streamguard:abc", _endpoints(tmp_path))
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert ("Secret", "streamguard-redis") in kinds
    assert not any(o["kind"].startswith("MutatingAdmission") for o in objects)
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


def test_the_namespace_gets_the_object_store_secret_the_operator_names(tmp_path: Path) -> None:
    objects = platform("finserve", "redis://10.244.1.1:6379/0", "img", _endpoints(tmp_path))
    [secret] = [o for o in objects if o["metadata"]["name"] == OperatorSettings().object_store_secret_name]
    assert secret["kind"] == "Secret" and secret["metadata"]["namespace"] == "finserve"
    assert set(secret["stringData"]) == set(SECRET_KEYS.values())
    assert secret["stringData"]["endpoint"] == "http://10.244.1.1:8333", "pods reach the store at the pods' address"
    assert (secret["stringData"]["accessKeyId"], secret["stringData"]["secretAccessKey"]) == ("AKIDDEMO", "SHHHDEMO")


def test_the_operator_keeps_a_registry_per_namespace_and_is_given_no_key(tmp_path: Path) -> None:
    endpoints = _endpoints(tmp_path)
    env = object_store_operator_env(endpoints, "finserve")
    assert env == {"STREAMGUARD_OPERATOR_FEAST_REGISTRY": "s3://streamguard/demo/registry/finserve.db"}
    assert object_store_operator_env(endpoints, "e2e-1")["STREAMGUARD_OPERATOR_FEAST_REGISTRY"].endswith("/e2e-1.db")
    assert OperatorSettings.from_env(env).feast_registry == env["STREAMGUARD_OPERATOR_FEAST_REGISTRY"]


def test_offline_data_moves_to_the_bucket_and_nothing_else_changes() -> None:
    docs = load_examples(REPO / "examples" / "finserve")
    moved = on_object_store(docs, "bkt")
    assert on_object_store(moved, "other") == moved, "s3:// paths stay as they are"
    paths = []
    for before, after in zip(docs, moved, strict=True):
        spec = after["spec"]
        located = {"FeatureView": ["source"], "DriftMonitor": ["reference", "current"]}.get(after["kind"], [])
        for key in located:
            local = before["spec"][key]["path"]
            assert spec[key]["path"] == "s3://bkt/demo/" + local.removeprefix(".run/")
            paths.append(spec[key]["path"])
            spec[key]["path"] = local
        assert after == before
    assert "s3://bkt/demo/data/finserve/offline/account_profile" in paths and len(paths) == 6


def test_offline_data_outside_the_local_data_root_is_refused() -> None:
    view = {"kind": "FeatureView", "metadata": {"name": "v"}, "spec": {"source": {"path": "/srv/data/v"}}}
    with pytest.raises(ValueError, match="FeatureView/v: offline data at '/srv/data/v'"):
        on_object_store([view], "bkt")
