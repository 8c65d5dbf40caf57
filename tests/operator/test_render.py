"""Pure rendering: the objects each kind turns into, their wiring, hardening and stability."""

import json
from typing import Any

import pytest

from streamguard import clientsecurity
from streamguard.api.driftmonitor import DriftMonitorSpec
from streamguard.api.featureview import FeatureViewSpec
from streamguard.api.streamingwindow import StreamingWindowSpec
from streamguard.contracts.registry import normalized
from streamguard.jobspec import JOB_CONFIG_PATH, DriftJob, MaterializeJob, StreamJob
from streamguard.onlinestore.tenancy import store_project
from streamguard.operator.render import driftmonitor, featureview, streamingwindow
from streamguard.operator.render.common import CONFIG_HASH_ANNOTATION, IDENTITY_KINDS, REDIS_CA_FILE, Owner
from streamguard.operator.settings import OperatorSettings
from tests.operator import manifests

SETTINGS = OperatorSettings(
    image="registry.local/streamguard:1.2.3",
    spark_image="registry.local/streamguard-spark:1.2.3",
    kafka_bootstrap="kafka:9092",
    registry_url="http://registry/apis/ccompat/v7",
)


def owner(kind: str, name: str) -> Owner:
    return Owner(kind=kind, name=name, namespace="fraud", uid=f"uid-{name}", generation=3)


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [o["kind"] for o in objects]
    assert len(kinds) == len(set(kinds)), kinds
    return {o["kind"]: o for o in objects}


def fv_spec(**kwargs: Any) -> FeatureViewSpec:
    return FeatureViewSpec.model_validate(manifests.feature_view(**kwargs)["spec"])


def sw_spec(**kwargs: Any) -> StreamingWindowSpec:
    return StreamingWindowSpec.model_validate(manifests.streaming_window(**kwargs)["spec"])


def dm_spec() -> DriftMonitorSpec:
    return DriftMonitorSpec.model_validate(manifests.drift_monitor()["spec"])


def assert_child_conventions(objects: list[dict[str, Any]], o: Owner, component: str) -> None:
    for obj in objects:
        meta = obj["metadata"]
        assert meta["namespace"] == o.namespace
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "streamguard.dev/v1alpha1",
                "kind": o.kind,
                "name": o.name,
                "uid": o.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert meta["labels"] == {
            "app.kubernetes.io/name": f"streamguard-{component}",
            "app.kubernetes.io/instance": o.name,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "streamguard",
            "app.kubernetes.io/managed-by": "streamguard-operator",
        }
        assert len(meta["name"]) <= 63


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]["jobTemplate"]["spec"] if workload["kind"] == "CronJob" else workload["spec"]
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


def assert_hardened(pod: dict[str, Any], image: str = SETTINGS.image) -> None:
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert container["image"] == image
    for env in container["env"]:
        assert "password" not in json.dumps(env).lower()


def test_featureview_renders_config_and_cronjob() -> None:
    o = owner("FeatureView", "customer-txn")
    objects = featureview.render(o, fv_spec(schedule="*/5 * * * *"), SETTINGS)
    children = by_kind(objects)
    assert set(children) == {"ConfigMap", "CronJob", *IDENTITY_KINDS}
    assert_child_conventions(objects, o, "materializer")
    job = MaterializeJob.model_validate_json(children["ConfigMap"]["data"]["job.json"])
    assert (job.namespace, job.name, job.generation) == ("fraud", "customer-txn", 3)
    assert job.view == fv_spec(schedule="*/5 * * * *")
    assert store_project(job.namespace, job.view.project) == f"{job.view.project}_fraud"  # the keys' namespace
    cron = children["CronJob"]["spec"]
    assert cron["schedule"] == "*/5 * * * *"
    assert cron["suspend"] is False
    assert cron["concurrencyPolicy"] == "Forbid"
    pod = pod_spec(children["CronJob"])
    assert pod["containers"][0]["command"] == ["streamguard", "workload", "materialize", "--config", JOB_CONFIG_PATH]
    assert_hardened(pod)
    redis = next(e for e in pod["containers"][0]["env"] if e["name"] == "STREAMGUARD_REDIS_URL")
    assert redis == {
        "name": "STREAMGUARD_REDIS_URL",
        "valueFrom": {"secretKeyRef": {"name": "streamguard-redis", "key": "url"}},
    }


def test_featureview_suspend_and_no_source() -> None:
    o = owner("FeatureView", "v")
    spec = FeatureViewSpec.model_validate(
        {**manifests.feature_view()["spec"], "materialization": {"schedule": "@hourly", "suspend": True}}
    )
    assert by_kind(featureview.render(o, spec, SETTINGS))["CronJob"]["spec"]["suspend"] is True
    assert featureview.render(o, fv_spec(source=False), SETTINGS) == []


def test_render_is_deterministic() -> None:
    o = owner("StreamingWindow", "w")
    first = streamingwindow.render(o, sw_spec(), fv_spec(), SETTINGS)
    assert first == streamingwindow.render(o, sw_spec(), fv_spec(), SETTINGS)


def test_streamingwindow_renders_job_deployment_service_and_checkpoint() -> None:
    o = owner("StreamingWindow", "customer-txn")
    objects = streamingwindow.render(o, sw_spec(), fv_spec(), SETTINGS)
    children = by_kind(objects)
    assert set(children) == {"ConfigMap", "Deployment", "Service", "PersistentVolumeClaim", *IDENTITY_KINDS}
    assert_child_conventions(objects, o, "stream")
    job = StreamJob.model_validate_json(children["ConfigMap"]["data"]["job.json"])
    assert job.subject == "fraud.operator-tests.transactions-value"
    assert job.view == fv_spec() and job.view_name == "customer-txn"
    assert job.namespace == "fraud"  # the job's keys carry it (streamguard.onlinestore.tenancy)
    assert job.checkpoint_dir == "/var/lib/streamguard/checkpoints/fraud/customer-txn"
    deployment = children["Deployment"]["spec"]
    assert deployment["replicas"] == 1
    assert deployment["strategy"] == {"type": "Recreate"}
    pod = pod_spec(children["Deployment"])
    container = pod["containers"][0]
    assert container["command"] == ["streamguard", "workload", "stream", "--config", JOB_CONFIG_PATH]
    # The Spark job runs in the Spark image; every other workload in the main one.
    assert_hardened(pod, image=SETTINGS.spark_image)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STREAMGUARD_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["STREAMGUARD_REGISTRY_URL"] == "http://registry/apis/ccompat/v7"
    assert {"name": "checkpoint", "persistentVolumeClaim": {"claimName": "customer-txn-checkpoint"}} in pod["volumes"]
    selector = deployment["selector"]["matchLabels"]
    assert selector.items() <= deployment["template"]["metadata"]["labels"].items()
    service = children["Service"]["spec"]
    assert service["selector"] == selector
    assert service["ports"] == [{"name": "metrics", "port": 9108, "targetPort": "metrics", "protocol": "TCP"}]
    assert container["ports"][0]["containerPort"] == 9108


def test_streamingwindow_job_carries_the_operators_dead_letter_settings() -> None:
    o = owner("StreamingWindow", "w")

    def rendered(settings: OperatorSettings) -> tuple[StreamJob, str]:
        children = by_kind(streamingwindow.render(o, sw_spec(), fv_spec(), settings))
        annotations = children["Deployment"]["spec"]["template"]["metadata"]["annotations"]
        return StreamJob.model_validate_json(children["ConfigMap"]["data"]["job.json"]), annotations[
            CONFIG_HASH_ANNOTATION
        ]

    default, default_hash = rendered(SETTINGS)
    assert default.dead_letter_max_ratio == 0.01
    assert (default.dead_letter_window_seconds, default.unknown_schema_grace_seconds) == (60, 120)
    tuned, tuned_hash = rendered(
        SETTINGS.model_copy(
            update={"dead_letter_max_ratio": 0.2, "dead_letter_window_seconds": 15, "unknown_schema_grace_seconds": 0}
        )
    )
    assert tuned.dead_letter_max_ratio == 0.2
    assert (tuned.dead_letter_window_seconds, tuned.unknown_schema_grace_seconds) == (15, 0)
    assert tuned_hash != default_hash, "the job reads them at start: a changed setting rolls its pod"


def test_config_change_rolls_the_pod_and_nothing_else_does() -> None:
    o = owner("StreamingWindow", "w")

    def template_hash(spec: StreamingWindowSpec, view: FeatureViewSpec) -> str:
        deployment = by_kind(streamingwindow.render(o, spec, view, SETTINGS))["Deployment"]
        annotation: str = deployment["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
        return annotation

    base = template_hash(sw_spec(), fv_spec())
    assert base == template_hash(sw_spec(), fv_spec())
    assert base != template_hash(sw_spec(windows=(("1m", "30s"), ("5m", "1m"))), fv_spec())
    assert base != template_hash(sw_spec(), fv_spec(windows=("1m", "5m", "1h")))


def test_streamingwindow_suspend_and_emptydir_checkpoint() -> None:
    o = owner("StreamingWindow", "w")
    spec = StreamingWindowSpec.model_validate({**manifests.streaming_window()["spec"], "suspend": True})
    settings = SETTINGS.model_copy(update={"checkpoint_storage": None})
    children = by_kind(streamingwindow.render(o, spec, fv_spec(), settings))
    assert "PersistentVolumeClaim" not in children
    assert children["Deployment"]["spec"]["replicas"] == 0
    assert {"name": "checkpoint", "emptyDir": {}} in pod_spec(children["Deployment"])["volumes"]


@pytest.mark.parametrize(
    ("window", "view", "reason", "field"),
    [
        ({}, None, "FeatureViewNotFound", "spec.featureView"),
        ({"windows": (("1m", "15s"), ("1h", "5m"))}, {}, "FeaturesNotDeclared", "spec.aggregations"),
        (
            {"schema": {"type": "record", "name": "T", "fields": [{"name": "x", "type": "nope"}]}},
            {},
            "InvalidSchema",
            "spec.contract.schema",
        ),
        (
            {"schema": {**manifests.TRANSACTION_SCHEMA, "fields": manifests.TRANSACTION_SCHEMA["fields"][1:]}},
            {},
            "InvalidSchema",
            "spec.keyField",
        ),
    ],
)
def test_streamingwindow_cross_checks_name_the_field(
    window: dict[str, Any], view: dict[str, Any] | None, reason: str, field: str
) -> None:
    problem = streamingwindow.check(sw_spec(**window), "customer-txn", None if view is None else fv_spec(**view))
    assert problem is not None
    assert problem.reason == reason
    assert problem.message.startswith(field)


def test_streamingwindow_check_passes_when_view_declares_every_feature() -> None:
    assert streamingwindow.check(sw_spec(), "customer-txn", fv_spec()) is None


def test_schema_fingerprint_ignores_whitespace() -> None:
    text = json.dumps(manifests.TRANSACTION_SCHEMA, indent=4)
    compact = normalized(text)
    assert "\n" not in compact
    assert streamingwindow.fingerprint(compact) == streamingwindow.fingerprint(
        json.dumps(manifests.TRANSACTION_SCHEMA)
    )


def test_driftmonitor_renders_exporter_and_rule_only_when_served() -> None:
    o = owner("DriftMonitor", "customer-drift")
    without = by_kind(driftmonitor.render(o, dm_spec(), fv_spec(), SETTINGS, prometheus_rules=False))
    assert set(without) == {"ConfigMap", "Deployment", "Service", *IDENTITY_KINDS}
    objects = driftmonitor.render(o, dm_spec(), fv_spec(), SETTINGS, prometheus_rules=True)
    children = by_kind(objects)
    assert_child_conventions(objects, o, "drift-exporter")
    job = DriftJob.model_validate_json(children["ConfigMap"]["data"]["job.json"])
    assert job.view_name == "customer-txn" and job.metrics_port == 9109
    pod = pod_spec(children["Deployment"])
    assert pod["containers"][0]["command"] == ["streamguard", "workload", "drift", "--config", JOB_CONFIG_PATH]
    assert_hardened(pod)
    assert children["Service"]["spec"]["ports"][0]["port"] == 9109
    rules = children["PrometheusRule"]["spec"]["groups"][0]["rules"]
    exprs = {r["alert"]: r["expr"] for r in rules}
    assert (
        exprs["StreamGuardFeatureDrift"] == 'streamguard_drift_psi{namespace="fraud", monitor="customer-drift"} >= 0.2'
    )
    assert exprs["StreamGuardDriftShareHigh"] == (
        'streamguard_drift_share{namespace="fraud", monitor="customer-drift"} >= 0.5'
    )


@pytest.mark.parametrize(
    ("features", "reason", "field"),
    [
        (["nope"], "FeatureNotInView", "spec.features[0]"),
        (["txn_count_1m", "zzz"], "FeatureNotInView", "spec.features[1]"),
    ],
)
def test_driftmonitor_check(features: list[str], reason: str, field: str) -> None:
    spec = DriftMonitorSpec.model_validate({**manifests.drift_monitor()["spec"], "features": features})
    problem = driftmonitor.check(spec, "customer-txn", fv_spec())
    assert problem is not None and problem.reason == reason and problem.message.startswith(field)
    assert driftmonitor.check(dm_spec(), "customer-txn", None) is not None
    assert driftmonitor.check(dm_spec(), "customer-txn", fv_spec()) is None


def test_string_features_get_psi_but_not_the_ks_test() -> None:
    view = FeatureViewSpec.model_validate(
        {**manifests.feature_view()["spec"], "features": [{"name": "segment", "dtype": "STRING"}]}
    )
    psi = DriftMonitorSpec.model_validate({**manifests.drift_monitor()["spec"], "features": ["segment"]})
    assert driftmonitor.check(psi, "v", view) is None
    ks = DriftMonitorSpec.model_validate(
        {**manifests.drift_monitor()["spec"], "features": ["segment"], "ksFeatures": ["segment"]}
    )
    problem = driftmonitor.check(ks, "v", view)
    assert problem is not None and problem.reason == "FeatureNotNumeric"
    assert problem.message.startswith("spec.ksFeatures[0]")


@pytest.mark.parametrize(
    ("kind", "plural", "workload"),
    [("FeatureView", "featureviews", "CronJob"), ("StreamingWindow", "streamingwindows", "Deployment"),
     ("DriftMonitor", "driftmonitors", "Deployment")],
)
def test_each_workload_runs_as_its_own_account_limited_to_its_resource(kind: str, plural: str, workload: str) -> None:
    o = owner(kind, "customer-txn")
    rendered = {
        "FeatureView": lambda: featureview.render(o, fv_spec(), SETTINGS),
        "StreamingWindow": lambda: streamingwindow.render(o, sw_spec(), fv_spec(), SETTINGS),
        "DriftMonitor": lambda: driftmonitor.render(o, dm_spec(), fv_spec(), SETTINGS, prometheus_rules=False),
    }[kind]()
    children = by_kind(rendered)
    template = children[workload]["spec"]
    pod = (template["jobTemplate"]["spec"] if workload == "CronJob" else template)["template"]["spec"]
    account = children["ServiceAccount"]["metadata"]["name"]
    assert pod["serviceAccountName"] == account == children[workload]["metadata"]["name"]
    assert children["Role"]["rules"] == [
        {"apiGroups": ["streamguard.dev"], "resources": [plural], "resourceNames": ["customer-txn"], "verbs": ["get"]},
        {
            "apiGroups": ["streamguard.dev"],
            "resources": [f"{plural}/status"],
            "resourceNames": ["customer-txn"],
            "verbs": ["get", "patch"],
        },
    ]
    binding = children["RoleBinding"]
    assert binding["roleRef"]["name"] == children["Role"]["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "fraud"}]


def test_streamingwindow_gets_kafka_and_registry_credentials_by_reference_only() -> None:
    settings = SETTINGS.model_copy(update={
        "kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_credentials_secret": "kafka-user", "kafka_ca_secret": "kafka-ca",
        "registry_ca_secret": "registry-ca", "registry_client_cert_secret": "registry-client",
        "registry_credentials_secret": "registry-user",
    })
    children = by_kind(streamingwindow.render(owner("StreamingWindow", "w"), sw_spec(), fv_spec(), settings))
    pod = pod_spec(children["Deployment"])
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["STREAMGUARD_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["STREAMGUARD_KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
    for variable, secret, key in (("STREAMGUARD_KAFKA_SASL_USERNAME", "kafka-user", "username"),
                                  ("STREAMGUARD_KAFKA_SASL_PASSWORD", "kafka-user", "password"),
                                  ("STREAMGUARD_REGISTRY_USERNAME", "registry-user", "username"),
                                  ("STREAMGUARD_REGISTRY_PASSWORD", "registry-user", "password")):
        assert env[variable] == {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
    files = {"STREAMGUARD_KAFKA_CA_FILE": ("kafka-ca", "ca.crt"),
             "STREAMGUARD_REGISTRY_CA_FILE": ("registry-ca", "ca.crt"),
             "STREAMGUARD_REGISTRY_CERT_FILE": ("registry-client", "tls.crt"),
             "STREAMGUARD_REGISTRY_KEY_FILE": ("registry-client", "tls.key")}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for variable, (secret, key) in files.items():
        volume = volumes[secret]
        assert volume["secret"] == {"secretName": secret, "defaultMode": 0o440}
        assert mounts[secret]["readOnly"] is True
        assert env[variable]["value"] == f"{mounts[secret]['mountPath']}/{key}"
    # No credential is a value anywhere in the rendered objects.
    assert "password" not in json.dumps([e.get("value", "") for e in container["env"]])


def test_plaintext_settings_render_no_security_environment() -> None:
    children = by_kind(streamingwindow.render(owner("StreamingWindow", "w"), sw_spec(), fv_spec(), SETTINGS))
    names = {e["name"] for e in pod_spec(children["Deployment"])["containers"][0]["env"]}
    security = {clientsecurity.KAFKA_PROTOCOL_ENV, clientsecurity.KAFKA_MECHANISM_ENV,
                clientsecurity.KAFKA_USERNAME_ENV, clientsecurity.KAFKA_PASSWORD_ENV, clientsecurity.KAFKA_CA_FILE_ENV,
                clientsecurity.REGISTRY_CA_FILE_ENV, clientsecurity.REGISTRY_CERT_FILE_ENV,
                clientsecurity.REGISTRY_KEY_FILE_ENV, clientsecurity.REGISTRY_USERNAME_ENV,
                clientsecurity.REGISTRY_PASSWORD_ENV}
    assert not names & security


def _redis_ca_pods(settings: OperatorSettings) -> dict[str, dict[str, Any]]:
    """The pod specs of every workload, by name: those writing to Redis and the drift exporter (which does not)."""
    spec = sw_spec()
    scaled = spec.model_copy(update={"executors": spec.executors.model_copy(update={"count": 2})})
    stream = by_kind(streamingwindow.render(owner("StreamingWindow", "w"), scaled, fv_spec(), settings))
    drift = by_kind(driftmonitor.render(owner("DriftMonitor", "d"), dm_spec(), fv_spec(), settings,
                                        prometheus_rules=False))
    materializer = by_kind(featureview.render(owner("FeatureView", "v"), fv_spec(), settings))
    return {
        "materializer": pod_spec(materializer["CronJob"]),
        "stream": pod_spec(stream["Deployment"]),
        "executor": json.loads(stream["ConfigMap"]["data"]["executor-pod.yaml"])["spec"],
        "drift": pod_spec(drift["Deployment"]),
    }


@pytest.mark.parametrize("key", ["ca.crt", "redis-ca.pem"])
def test_every_pod_writing_to_redis_mounts_the_redis_secrets_ca_if_it_has_one(key: str) -> None:
    """The Redis Secret's CA key, optional (a Secret without it starts the pod as before), always at
    :data:`REDIS_CA_FILE`, the one path a ``rediss://...?ssl_ca_certs=`` URL names; nothing else of the Secret (its
    URL) lands on disk."""
    settings = SETTINGS.model_copy(update={"redis_ca_key": key})
    directory, _, name = REDIS_CA_FILE.rpartition("/")
    pods = _redis_ca_pods(settings)
    for workload in ("materializer", "stream", "executor"):
        pod = pods[workload]
        volumes = [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "streamguard-redis"]
        assert volumes == [{"name": "redis-ca", "secret": {
            "secretName": "streamguard-redis", "defaultMode": 0o440, "optional": True,
            "items": [{"key": key, "path": name}]}}], workload
        assert {"name": "redis-ca", "mountPath": directory, "readOnly": True} in pod["containers"][0]["volumeMounts"]
    assert "redis-ca" not in json.dumps(pods["drift"]), "the drift exporter does not talk to Redis"


def test_sasl_without_a_credentials_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="kafka_credentials_secret"):
        OperatorSettings(kafka_security_protocol="SASL_SSL")


def test_executors_turn_the_stream_pod_into_a_spark_driver_on_kubernetes() -> None:
    o = owner("StreamingWindow", "customer-txn")
    spec = sw_spec()
    spec = spec.model_copy(update={"executors": spec.executors.model_copy(update={"count": 2, "memory": "1536Mi"})})
    children = by_kind(streamingwindow.render(o, spec, fv_spec(), SETTINGS))
    container = pod_spec(children["Deployment"])["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    names = [e["name"] for e in container["env"]]
    # The pod's name and IP come first: the settings refer to them, and the kubelet expands only earlier ones.
    assert names.index("POD_IP") < names.index("STREAMGUARD_SPARK_CONF")
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["STREAMGUARD_SPARK_MASTER"]["value"] == \
        "k8s://https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"
    conf = json.loads(env["STREAMGUARD_SPARK_CONF"]["value"])
    assert conf["spark.executor.instances"] == "2" and conf["spark.executor.cores"] == "1"
    assert conf["spark.executor.memory"] == "1536m"
    assert conf["spark.kubernetes.container.image"] == SETTINGS.spark_image
    assert conf["spark.kubernetes.namespace"] == "fraud"
    assert conf["spark.kubernetes.driver.pod.name"] == "$(POD_NAME)"  # executors are owned by the driver's pod
    assert conf["spark.driver.host"] == "$(POD_IP)" and conf["spark.authenticate"] == "true"
    assert conf["spark.kubernetes.executor.podNamePrefix"] == "customer-txn-stream"
    assert {p["containerPort"] for p in container["ports"]} == {9108, 7078, 7079}
    # The driver's account may manage pods and ConfigMaps of its namespace, besides its own resource.
    rules = children["Role"]["rules"]
    assert {"apiGroups": [""], "resources": ["pods"],
            "verbs": ["get", "list", "watch", "create", "delete", "deletecollection"]} in rules
    assert not [r for r in rules if set(r["resources"]) - {"pods", "configmaps", "streamingwindows",
                                                           "streamingwindows/status"}]
    # Executors: hardened like the driver, no API token, the driver's checkpoint volume, on the driver's node.
    template = json.loads(children["ConfigMap"]["data"]["executor-pod.yaml"])
    assert conf["spark.kubernetes.executor.podTemplateFile"] == "/etc/streamguard/executor-pod.yaml"
    pod = template["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "checkpoint", "persistentVolumeClaim": {"claimName": "customer-txn-checkpoint"}} in pod["volumes"]
    assert {"name": "checkpoint", "mountPath": SETTINGS.checkpoint_root} in pod["containers"][0]["volumeMounts"]
    affinity = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert affinity["labelSelector"]["matchLabels"] == children["Deployment"]["spec"]["selector"]["matchLabels"]
    # A shared (ReadWriteMany) checkpoint lets executors spread over nodes.
    shared = SETTINGS.model_copy(update={"checkpoint_access_mode": "ReadWriteMany"})
    children = by_kind(streamingwindow.render(o, spec, fv_spec(), shared))
    assert children["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert "affinity" not in json.loads(children["ConfigMap"]["data"]["executor-pod.yaml"])["spec"]


def test_local_mode_renders_no_spark_on_kubernetes() -> None:
    children = by_kind(streamingwindow.render(owner("StreamingWindow", "customer-txn"), sw_spec(), fv_spec(),
                                              SETTINGS))
    env = {e["name"] for e in pod_spec(children["Deployment"])["containers"][0]["env"]}
    assert not env & {"STREAMGUARD_SPARK_MASTER", "STREAMGUARD_SPARK_CONF", "POD_IP"}
    assert list(children["ConfigMap"]["data"]) == ["job.json"]


def test_executors_without_a_checkpoint_volume_are_refused() -> None:
    spec = sw_spec()
    spec = spec.model_copy(update={"executors": spec.executors.model_copy(update={"count": 2})})
    problem = streamingwindow.check(spec, "customer-txn", fv_spec(), checkpoint_volume=False)
    assert problem is not None and problem.reason == "ExecutorsNeedCheckpointVolume"
    assert problem.message.startswith("spec.executors.count: 2 executors")
    assert streamingwindow.check(spec, "customer-txn", fv_spec()) is None
