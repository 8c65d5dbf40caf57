"""Unit tests of the demo's pure renderers."""

import json
from pathlib import Path

import pytest
import yaml

from streamguard.demo.manifests import (
    WORKLOAD_RESOURCES,
    isolate,
    load_examples,
    on_object_store,
    operator,
    operator_release,
    operator_values,
    platform,
    subject,
    topics,
)
from streamguard.demo.run import DemoState, owns_stack
from streamguard.devstack.chart import CHART
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.image import BuiltImage, ProjectImages
from streamguard.devstack.objectstore import S3Identity, identities_config
from streamguard.objectstore import SECRET_KEYS
from streamguard.operator.settings import OperatorSettings, Resources

REPO = Path(__file__).resolve().parents[2]
ENDPOINTS = Endpoints(run_dir="/s", kubeconfig="/s/kubeconfig", apiserver="https://127.0.0.1:6443",
                      kafka_bootstrap="127.0.0.1:9092", registry_url="http://127.0.0.1:8081/apis/ccompat/v7",
                      redis_url="redis://127.0.0.1:6379/0", bin_dir="/s/bin", pod_kafka_bootstrap="10.244.9.1:9092",
                      pod_registry_url="http://10.244.9.1:8081/apis/ccompat/v7", pod_redis_url="redis://10.244.9.1:6379/0",
                      s3_bucket="streamguard")


def images(main: str = "localhost/streamguard:0123abcd",
           spark: str = "localhost/streamguard-spark:0123abcd") -> ProjectImages:
    return ProjectImages(main=BuiltImage(main, "sha256:1", "/a", 1, 0.0),
                         spark=BuiltImage(spark, "sha256:2", "/b", 1, 0.0))


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


def test_operator_values_are_the_built_images_the_pods_addresses_and_one_namespace() -> None:
    values = operator_values(ENDPOINTS, images(), "finserve")
    assert values["image"] == {"repository": "localhost/streamguard", "sparkRepository": "localhost/streamguard-spark",
                               "tag": "0123abcd", "pullPolicy": "Never"}
    assert values["connections"]["kafka"]["bootstrapServers"] == ENDPOINTS.pod_kafka_bootstrap
    assert values["connections"]["schemaRegistry"]["url"] == ENDPOINTS.pod_registry_url
    assert values["operator"]["watchNamespaces"] == ["finserve"]
    assert values["serving"]["enabled"] is False and values["devRedis"]["enabled"] is False
    # Every kind of workload the chart sizes, scaled down for the one node.
    chart_kinds = yaml.safe_load((CHART / "values.yaml").read_text())["workloads"]["resources"]
    assert set(values["workloads"]["resources"]) == set(chart_kinds) == set(WORKLOAD_RESOURCES)


def test_operator_values_refuse_images_of_two_tags() -> None:
    with pytest.raises(ValueError, match="one tag"):
        operator_values(ENDPOINTS, images(spark="localhost/streamguard-spark:other"), "finserve")


def test_the_operator_pod_gets_the_settings_the_host_process_had() -> None:
    """``helm template`` of the chart (its values.schema.json checks the values): the operator's env, read as
    the operator reads it, holds the settings the demo's host-process operator was given."""
    objects = operator(ENDPOINTS, images(), "team-a")
    release = operator_release("team-a")
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    assert ("Deployment", f"{release}-operator") in kinds and ("ServiceAccount", release) in kinds
    assert all(o["metadata"]["labels"]["app.kubernetes.io/instance"] == release for o in objects)
    cluster_wide = [name for kind, name in kinds if kind.startswith("Cluster")]
    assert cluster_wide and all(name.startswith(f"{release}-") for name in cluster_wide), "unique per namespace"
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--namespace=team-a" in container["args"] and "--all-namespaces" not in container["args"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["livenessProbe"]["failureThreshold"] * container["livenessProbe"]["periodSeconds"] >= 120
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert {e["name"] for e in container["env"] if "valueFrom" in e} >= {"STREAMGUARD_REDIS_URL"}
    settings = OperatorSettings.from_env(env)
    assert (settings.image, settings.spark_image, settings.image_pull_policy) == (
        "localhost/streamguard:0123abcd", "localhost/streamguard-spark:0123abcd", "Never")
    assert settings.kafka_for_operator() == settings.kafka_bootstrap == ENDPOINTS.pod_kafka_bootstrap
    assert settings.registry_for_operator() == settings.registry_url == ENDPOINTS.pod_registry_url
    assert settings.workers == 2 and settings.checkpoint_storage == "1Gi"
    assert settings.materialize_resources == Resources.model_validate(WORKLOAD_RESOURCES["materialize"])
    assert settings.stream_resources == Resources.model_validate(WORKLOAD_RESOURCES["stream"])
    assert settings.drift_resources == Resources.model_validate(WORKLOAD_RESOURCES["drift"])


def test_the_namespace_gets_the_object_store_secret_the_operator_names(tmp_path: Path) -> None:
    objects = platform("finserve", "redis://10.244.1.1:6379/0", "img", _endpoints(tmp_path))
    [secret] = [o for o in objects if o["metadata"]["name"] == OperatorSettings().object_store_secret_name]
    assert secret["kind"] == "Secret" and secret["metadata"]["namespace"] == "finserve"
    assert set(secret["stringData"]) == set(SECRET_KEYS.values())
    assert secret["stringData"]["endpoint"] == "http://10.244.1.1:8333", "pods reach the store at the pods' address"
    assert (secret["stringData"]["accessKeyId"], secret["stringData"]["secretAccessKey"]) == ("AKIDDEMO", "SHHHDEMO")


def test_the_operator_keeps_a_registry_per_namespace_with_the_keys_of_the_namespaces_secret() -> None:
    """The chart's env of the operator: the registry per namespace, the keys only by secretKeyRef."""
    [deployment] = [o for o in operator(ENDPOINTS, images(), "finserve") if o["kind"] == "Deployment"]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    values = {e["name"]: e["value"] for e in env if "value" in e}
    assert OperatorSettings.from_env(values).feast_registry == "s3://streamguard/demo/registry/finserve.db"
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in env if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs["AWS_ACCESS_KEY_ID"] == refs["AWS_SECRET_ACCESS_KEY"] == OperatorSettings().object_store_secret_name
    other = operator_values(ENDPOINTS, images(), "e2e-1")["operator"]["feastRegistry"]
    assert other.endswith("/e2e-1.db")


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


def test_the_demo_stops_only_a_stack_it_started() -> None:
    earlier = DemoState(namespace="finserve", stack_dir="/runs/own", owns_stack=True, serving_port=8080,
                        node_name="n", topic="t")
    assert owns_stack(False, None, Path("/runs/shared")), "started now"
    assert owns_stack(True, earlier, Path("/runs/own")), "started by an earlier run, still running"
    assert not owns_stack(True, earlier, Path("/runs/shared")), "an earlier claim on another stack"
    assert not owns_stack(True, None, Path("/runs/shared")), "someone else's running stack"
