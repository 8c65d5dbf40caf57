"""The Helm chart with the real helm binary and the real apiserver: lint, template, server-side dry-run,
install; CRDs and RBAC kept identical to what the code generates."""

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamguard import objectstore
from streamguard.api.crdgen import render_all
from streamguard.operator.rbac import rules as operator_rules
from streamguard.operator.render.common import redis_ca
from streamguard.operator.settings import OperatorSettings, Resources
from streamguard.serving.cli import command as serve
from tests.delivery.conftest import CHART, REPO, VALUES_FILES, Helm

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def rendered(helm: Helm, values: str, namespace: str = "streamguard", release: str = "sg",
             *extra: str) -> list[dict[str, Any]]:
    out = helm("template", release, str(CHART), "--namespace", namespace, "-f", str(CHART / values), *extra).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(matches) == 1, f"expected one {kind} *{suffix}, found {[d['metadata']['name'] for d in matches]}"
    return matches[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return containers[0]


def test_chart_crds_are_the_generated_ones() -> None:
    generated = render_all()
    for name, text in generated.items():
        assert (CHART / "crds" / name).read_text() == text, \
            f"charts/streamguard/crds/{name} is stale: cp crds/*.yaml charts/streamguard/crds/"
        assert (REPO / "crds" / name).read_text() == text, f"crds/{name} is stale"
    extra = {p.name for p in (CHART / "crds").iterdir()} - set(generated)
    assert extra == {"kopf.dev-peerings.yaml"}


def test_operator_rules_file_is_what_the_operator_renders() -> None:
    shipped = yaml.safe_load((CHART / "files" / "operator-clusterrole.yaml").read_text())
    assert shipped["rules"] == operator_rules()


@pytest.mark.stack
def test_rendered_operator_clusterrole_equals_the_operator_rbac(helm: Helm) -> None:
    role = find(rendered(helm, "values.yaml"), "ClusterRole", "-operator")
    assert role["rules"] == operator_rules()


@pytest.mark.stack
@pytest.mark.parametrize("values", VALUES_FILES)
def test_lint(helm: Helm, values: str) -> None:
    result = helm("lint", "--strict", str(CHART), "-f", str(CHART / values))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.stack
@pytest.mark.parametrize("values", VALUES_FILES)
def test_template_renders_operator_and_serving(helm: Helm, values: str) -> None:
    docs = rendered(helm, values)
    operator = find(docs, "Deployment", "-operator")
    serving = find(docs, "Deployment", "-serving")
    args = container(operator)["args"]
    assert args[:2] == ["operator", "run"]
    assert container(operator)["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container(operator)["readinessProbe"]["httpGet"]["path"] == "/healthz"
    if operator["spec"]["replicas"] > 1:
        assert "--peering=streamguard" in args
        assert {d["metadata"]["name"] for d in docs if d["kind"] == "KopfPeering"} == {"streamguard"}
    else:
        assert "--standalone" in args
    serve = container(serving)
    assert serve["args"][:2] == ["serve", "--from-cluster=streamguard"]
    assert serve["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert serve["livenessProbe"]["httpGet"]["path"] == "/livez"
    for pod in (operator, serving):
        spec = pod["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert container(pod)["securityContext"]["readOnlyRootFilesystem"] is True
        env = {e["name"]: e for e in container(pod)["env"]}
        assert "secretKeyRef" in env["STREAMGUARD_REDIS_URL"]["valueFrom"]
    assert find(docs, "Pod", "-smoke-test")["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert find(docs, "ConfigMap", "-dashboard")["data"]["streamguard.json"].lstrip().startswith("{")


@pytest.mark.stack
def test_environment_profiles(helm: Helm) -> None:
    dev = rendered(helm, "values-dev.yaml")
    assert find(dev, "Deployment", "-redis")
    secret = find(dev, "Secret", "-redis")
    env = {e["name"]: e for e in container(find(dev, "Deployment", "-serving"))["env"]}
    assert env["STREAMGUARD_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert not [d for d in dev if d["kind"] in ("ServiceMonitor", "PrometheusRule")]
    prod = rendered(helm, "values-prod.yaml")
    assert not [d for d in prod if d["metadata"]["name"].endswith("-redis")]
    assert find(prod, "PodDisruptionBudget", "-serving")["spec"]["minAvailable"] == 2
    assert len([d for d in prod if d["kind"] == "ServiceMonitor"]) == 2
    rule = find(prod, "PrometheusRule")
    assert rule["spec"]["groups"][0]["rules"], "the PrometheusRule carries the drift helper's alert rules"
    assert find(prod, "Deployment", "-serving")["spec"]["replicas"] == 3


def test_feast_registry_credentials_come_from_the_object_store_secret(helm: Helm) -> None:
    plain = {e["name"] for e in container(find(rendered(helm, "values-dev.yaml"), "Deployment", "-operator"))["env"]}
    assert "STREAMGUARD_OPERATOR_FEAST_REGISTRY" not in plain and "AWS_SECRET_ACCESS_KEY" not in plain
    docs = rendered(helm, "values-dev.yaml", "streamguard", "sg", "--set", "operator.feastRegistry=s3://b/feast/r.db")
    env = {e["name"]: e for e in container(find(docs, "Deployment", "-operator"))["env"]}
    assert env["STREAMGUARD_OPERATOR_FEAST_REGISTRY"]["value"] == "s3://b/feast/r.db"
    assert env["STREAMGUARD_OBJECT_STORE_SECRET"]["value"] == "streamguard-object-store"
    for variable, key in objectstore.SECRET_KEYS.items():
        assert env[variable]["valueFrom"]["secretKeyRef"] == {
            "name": "streamguard-object-store", "key": key, "optional": True
        }


@pytest.mark.stack
def test_workload_resources_reach_the_operator_as_its_settings(helm: Helm) -> None:
    def settings(*extra: str) -> OperatorSettings:
        docs = rendered(helm, "values.yaml", "streamguard", "sg", *extra)
        env = container(find(docs, "Deployment", "-operator"))["env"]
        return OperatorSettings.from_env({e["name"]: e["value"] for e in env if "value" in e})

    defaults = OperatorSettings()
    unset = settings()
    assert (unset.materialize_resources, unset.stream_resources, unset.drift_resources) == (
        defaults.materialize_resources, defaults.stream_resources, defaults.drift_resources)
    small = settings("--set", "workloads.resources.stream.requests.cpu=250m",
                     "--set", "workloads.resources.stream.limits.memory=2Gi")
    assert small.stream_resources == Resources(requests={"cpu": "250m"}, limits={"memory": "2Gi"})
    assert small.materialize_resources == defaults.materialize_resources


@pytest.mark.stack
def test_kafka_and_registry_credentials_reach_the_operator_by_reference(helm: Helm) -> None:
    docs = rendered(helm, "values.yaml", "streamguard", "sg",
                    "--set", "connections.kafka.securityProtocol=SASL_SSL",
                    "--set", "connections.kafka.credentialsSecret=kafka-user",
                    "--set", "connections.kafka.caSecret=kafka-ca",
                    "--set", "connections.schemaRegistry.url=https://registry:8443/apis/ccompat/v7",
                    "--set", "connections.schemaRegistry.caSecret=registry-ca",
                    "--set", "connections.schemaRegistry.credentialsSecret=registry-user")
    operator = container(find(docs, "Deployment", "-operator"))
    env = {e["name"]: e for e in operator["env"]}
    settings = OperatorSettings.from_env({name: e["value"] for name, e in env.items() if "value" in e})
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (settings.kafka_credentials_secret, settings.kafka_ca_secret) == ("kafka-user", "kafka-ca")
    assert (settings.registry_ca_secret, settings.registry_credentials_secret) == ("registry-ca", "registry-user")
    assert settings.registry_client_cert_secret == ""
    # The operator's own clients: the same Secrets, by reference and as read-only files.
    for variable, secret, key in (("STREAMGUARD_KAFKA_SASL_PASSWORD", "kafka-user", "password"),
                                  ("STREAMGUARD_REGISTRY_PASSWORD", "registry-user", "password")):
        assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": key}
    pod = find(docs, "Deployment", "-operator")["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in operator["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for volume, secret, variable in (("kafka-ca", "kafka-ca", "STREAMGUARD_KAFKA_CA_FILE"),
                                     ("registry-ca", "registry-ca", "STREAMGUARD_REGISTRY_CA_FILE")):
        assert volumes[volume]["secret"] == {"secretName": secret, "defaultMode": 0o440}
        assert mounts[volume]["readOnly"] is True
        assert env[variable]["value"] == f"{mounts[volume]['mountPath']}/ca.crt"
    assert "registry-client" not in volumes
    assert settings.kafka_security_for_operator({"STREAMGUARD_KAFKA_SASL_USERNAME": "u",
                                                 "STREAMGUARD_KAFKA_SASL_PASSWORD": "p"}).protocol == "SASL_SSL"


@pytest.mark.stack
@pytest.mark.parametrize(("values", "extra", "key"), [
    ("values.yaml", (), "ca.crt"),
    ("values.yaml", ("--set", "connections.redis.caKey=redis-ca.pem"), "redis-ca.pem"),
    ("values-dev.yaml", (), "ca.crt"),
])
def test_serving_and_the_operator_mount_the_redis_secrets_ca_as_the_workloads_do(
    helm: Helm, values: str, extra: tuple[str, ...], key: str
) -> None:
    """The Redis Secret's CA key, optional (a Secret without it mounts nothing), at the one path a
    ``rediss://...?ssl_ca_certs=`` URL names: the very volume and mount the operator renders for its workloads."""
    docs = rendered(helm, values, "streamguard", "sg", *extra)
    operator = find(docs, "Deployment", "-operator")
    env = {e["name"]: e for e in container(operator)["env"]}
    settings = OperatorSettings.from_env({name: e["value"] for name, e in env.items() if "value" in e})
    assert settings.redis_ca_key == key
    assert settings.redis_secret_name == env["STREAMGUARD_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"]
    volume, mount = redis_ca(settings)
    for deployment in (operator, find(docs, "Deployment", "-serving")):
        pod = deployment["spec"]["template"]["spec"]
        assert [v for v in pod["volumes"] if v["name"] == "redis-ca"] == [volume]
        assert [m for m in container(deployment)["volumeMounts"] if m["name"] == "redis-ca"] == [mount]


@pytest.mark.stack
def test_the_operator_watches_its_own_namespace_unless_told_otherwise(helm: Helm) -> None:
    docs = rendered(helm, "values.yaml", "features")
    args = container(find(docs, "Deployment", "-operator"))["args"]
    assert "--namespace=features" in args and "--all-namespaces" not in args
    bindings = [d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("-operator")]
    assert [b["metadata"]["namespace"] for b in bindings] == ["features"]
    assert not [d for d in docs if d["kind"] == "ClusterRoleBinding" and d["roleRef"]["name"].endswith("-operator")]

    everywhere = rendered(helm, "values.yaml", "features", "sg", "--set", "operator.clusterWide=true")
    assert "--all-namespaces" in container(find(everywhere, "Deployment", "-operator"))["args"]
    find(everywhere, "ClusterRoleBinding", "-operator")

    refused = helm("template", "sg", str(CHART), "--set", "operator.clusterWide=true",
                   "--set", "operator.watchNamespaces={a}", check=False)
    assert refused.returncode != 0
    assert "operator.clusterWide and operator.watchNamespaces exclude each other" in refused.stderr


@pytest.mark.stack
def test_watching_namespaces_binds_per_namespace(helm: Helm) -> None:
    docs = rendered(helm, "values-staging.yaml", "streamguard", "sg", "--set", "operator.watchNamespaces={a,b}")
    bindings = [d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("-operator")]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["a", "b"]
    # The cluster-wide grants: listing StreamingWindows everywhere, to find which namespace owns a subject, and
    # kopf's reads of cluster-scoped resources (a RoleBinding cannot grant them).
    cluster_bindings = sorted(d["roleRef"]["name"] for d in docs if d["kind"] == "ClusterRoleBinding")
    assert cluster_bindings == ["sg-streamguard-operator-cluster-reads", "sg-streamguard-operator-subject-owners"]
    owners = find(docs, "ClusterRole", "-operator-subject-owners")
    assert owners["rules"] == [{"apiGroups": ["streamguard.dev"], "resources": ["streamingwindows"], "verbs": ["list"]}]
    reads = find(docs, "ClusterRole", "-operator-cluster-reads")["rules"]
    cluster_scoped = {"customresourcedefinitions", "namespaces"}
    assert reads == [rule for rule in operator_rules() if cluster_scoped & set(rule["resources"])]
    assert {r for rule in reads for r in rule["resources"]} == cluster_scoped
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in reads)
    assert sorted(d["metadata"]["namespace"] for d in docs if d["kind"] == "KopfPeering") == ["a", "b"]
    args = container(find(docs, "Deployment", "-operator"))["args"]
    assert "--namespace=a" in args and "--namespace=b" in args and "--all-namespaces" not in args


@pytest.mark.stack
@pytest.mark.parametrize(("setting", "field"), [
    ("operator.replicas=-1", "replicas"),
    ("connections.kafka.bootstrapServers=not a host", "bootstrapServers"),
    ("serving.logLevel=loud", "logLevel"),
    ("operatr.replicas=2", "operatr"),
    ("workloads.resources.spark.requests.cpu=1", "spark"),
    ("connections.kafka.securityProtocol=SASL_SSL", "credentialsSecret"),
    ("connections.kafka.securityProtocol=TLS", "securityProtocol"),
    ("connections.redis.caKey=", "caKey"),
])
def test_values_schema_refuses_bad_values(helm: Helm, setting: str, field: str) -> None:
    result = helm("template", "sg", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert field in result.stderr


@pytest.fixture
def release(helm: Helm, namespace: str) -> Iterator[str]:
    name = f"sg-{uuid.uuid4().hex[:6]}"
    yield name
    helm("uninstall", name, "--namespace", namespace, "--wait", "--timeout", "60s", check=False)


@pytest.mark.stack
@pytest.mark.parametrize("values", VALUES_FILES)
def test_every_manifest_passes_server_side_dry_run(
    helm: Helm, kubectl: Kubectl, namespace: str, chart_crds: None, prometheus_crds: Path, values: str
) -> None:
    manifest = helm("template", "sg", str(CHART), "--namespace", namespace, "-f", str(CHART / values)).stdout
    result = kubectl("apply", "--dry-run=server", "--namespace", namespace, "-f", "-", input=manifest, check=False)
    assert result.returncode == 0, result.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(manifest) if doc}
    applied = result.stdout.count("(server dry run)")
    assert applied == len([d for d in yaml.safe_load_all(manifest) if d]) and applied > 5
    assert {"Deployment", "Service", "ClusterRole", "ServiceAccount", "Pod"} <= kinds


@pytest.mark.stack
def test_install_creates_operator_and_serving(
    helm: Helm, kubectl: Kubectl, namespace: str, chart_crds: None, release: str
) -> None:
    helm("install", release, str(CHART), "--namespace", namespace, "-f", str(CHART / "values-dev.yaml"),
         "--set", "operator.watchNamespaces={" + namespace + "}")

    def get(*what: str) -> Any:
        return json.loads(kubectl("get", *what, "-o", "json").stdout)

    deployments = {d["metadata"]["name"]: d for d in get("deployments", "-n", namespace)["items"]}
    operator = deployments[f"{release}-streamguard-operator"]
    serving = deployments[f"{release}-streamguard-serving"]
    assert f"{release}-streamguard-redis" in deployments
    assert container(operator)["args"][:3] == ["operator", "run", f"--namespace={namespace}"]
    assert container(serving)["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service = get("service", f"{release}-streamguard-serving", "-n", namespace)
    assert service["spec"]["ports"][0]["port"] == 80
    accounts = {a["metadata"]["name"] for a in get("serviceaccounts", "-n", namespace)["items"]}
    assert {f"{release}-streamguard", f"{release}-streamguard-serving"} <= accounts
    role = get("clusterrole", f"{release}-streamguard-operator")
    assert role["rules"] == operator_rules()
    binding = get("rolebinding", f"{release}-streamguard-operator", "-n", namespace)
    assert binding["subjects"][0]["name"] == f"{release}-streamguard"
    status = json.loads(helm("status", release, "--namespace", namespace, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"


@pytest.mark.stack
def test_installed_service_account_may_do_exactly_what_the_operator_needs(
    helm: Helm, kubectl: Kubectl, namespace: str, chart_crds: None, release: str
) -> None:
    helm("install", release, str(CHART), "--namespace", namespace, "-f", str(CHART / "values-dev.yaml"),
         "--set", "operator.watchNamespaces={" + namespace + "}")
    account = f"system:serviceaccount:{namespace}:{release}-streamguard"

    def can(verb: str, resource: str, where: str = namespace) -> bool:
        result = kubectl("auth", "can-i", verb, resource, "--namespace", where, "--as", account, check=False)
        return result.stdout.strip() == "yes"

    assert can("watch", "featureviews.streamguard.dev")
    assert can("patch", "streamingwindows.streamguard.dev/status")
    assert can("create", "deployments.apps")
    assert can("delete", "cronjobs.batch")
    assert not can("get", "secrets")
    # Pods: held only to grant them to the Spark drivers of StreamingWindows with executors (the escalation
    # check); nothing that reaches into a running pod, and nothing in namespaces it does not watch.
    assert can("create", "pods")
    assert not can("patch", "pods") and not can("update", "pods")
    exec_ = kubectl("auth", "can-i", "create", "pods", "--subresource=exec", "--namespace", namespace, "--as", account,
                    check=False)
    assert exec_.stdout.strip() == "no", exec_.stdout
    assert not can("create", "pods", "kube-system")
    assert not can("watch", "featureviews.streamguard.dev", "kube-system")
    assert can("watch", "customresourcedefinitions.apiextensions.k8s.io") and can("list", "namespaces")
    assert not can("delete", "namespaces") and not can("patch", "customresourcedefinitions.apiextensions.k8s.io")
    serving = f"system:serviceaccount:{namespace}:{release}-streamguard-serving"
    read = kubectl("auth", "can-i", "list", "streamingwindows.streamguard.dev", "-n", namespace, "--as", serving,
                   check=False)
    write = kubectl("auth", "can-i", "patch", "featureviews.streamguard.dev", "-n", namespace, "--as", serving,
                    check=False)
    assert (read.stdout.strip(), write.stdout.strip()) == ("yes", "no")


def test_kind_config_matches_the_dev_profile() -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    ports = [m["hostPort"] for node in config["nodes"] for m in node.get("extraPortMappings", [])]
    assert len(ports) == len(set(ports)) and 30080 in ports
    dev = yaml.safe_load((CHART / "values-dev.yaml").read_text())
    image = f"{dev['image']['repository']}:{dev['image']['tag']}"
    assert f"kind load docker-image {image} --name {config['name']}" in (REPO / "kind-config.yaml").read_text()
    assert f"kind load docker-image {image} --name {config['name']}" in (REPO / "docs" / "helm.md").read_text()


@pytest.mark.stack
def test_serving_readiness_policy(helm: Helm) -> None:
    serve = container(find(rendered(helm, "values.yaml"), "Deployment", "-serving"))["args"]
    assert "--required-views=*" in serve and "--advisory-views=" in serve
    docs = rendered(helm, "values.yaml", "streamguard", "sg", "--set", "serving.advisoryViews={device-*,x}")
    assert "--advisory-views=device-*,x" in container(find(docs, "Deployment", "-serving"))["args"]
    bad = helm("template", "sg", str(CHART), "--set", "serving.requiredViews={Not A View}", check=False)
    assert bad.returncode != 0 and "requiredViews" in bad.stderr


@pytest.mark.stack
def test_serving_limits_reach_the_server_as_its_settings(helm: Helm) -> None:
    """Every argument the chart gives `streamguard serve` is one the command parses, and the limits arrive."""
    args = container(find(rendered(helm, "values.yaml"), "Deployment", "-serving"))["args"]
    assert args[0] == "serve"
    mounted = "--auth-token-file"  # a path in the pod: not here to check
    parsed = serve.make_context("serve", [arg for arg in args[1:] if not arg.startswith(mounted)]).params
    limits = yaml.safe_load((CHART / "values.yaml").read_text())["serving"]["limits"]
    assert parsed["client_bytes_in_flight"] == limits["clientBytesInFlight"]
    assert parsed["client_values_in_flight"] == limits["clientValuesInFlight"]
    assert parsed["client_values_per_second"] == limits["clientValuesPerSecond"]
    assert parsed["slice_rows"] == limits["sliceRows"]
    assert parsed["max_concurrent_lookups"] == limits["maxConcurrentLookups"]
