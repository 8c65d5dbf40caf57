"""The serving objects the demo and the tests deploy: the chart's, rendered by ``helm template``."""

from typing import Any

import pytest

from streamguard.devstack.chart import ServingDeployment, render_serving

pytestmark = pytest.mark.stack


def by_kind(spec: ServingDeployment) -> dict[str, dict[str, Any]]:
    objects = render_serving(spec)
    kinds = {o["kind"]: o for o in objects}
    assert len(kinds) == len(objects), "one object of each kind"
    return kinds


def pod(spec: ServingDeployment) -> dict[str, Any]:
    found: dict[str, Any] = by_kind(spec)["Deployment"]["spec"]["template"]["spec"]
    return found


def test_serving_only_with_probes_security_and_rbac() -> None:
    objects = by_kind(ServingDeployment(namespace="serving", auth_token_secret="tokens", watch_namespace="features"))
    assert set(objects) == {"ServiceAccount", "Role", "RoleBinding", "Deployment", "Service", "NetworkPolicy"}
    spec = objects["Deployment"]["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in spec["volumes"]
    assert container["args"][:2] == ["serve", "--from-cluster=features"]
    env = {e["name"]: e for e in container["env"]}
    assert env["STREAMGUARD_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "streamguard-redis", "key": "url"}
    selector = objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= objects["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    assert objects["Service"]["spec"]["selector"] == selector
    assert objects["Role"]["metadata"]["namespace"] == "features"
    assert objects["RoleBinding"]["subjects"][0] == {
        "kind": "ServiceAccount", "name": "streamguard-serving", "namespace": "serving"}


def test_two_deployments_in_one_namespace_select_only_their_own_pods() -> None:
    first = by_kind(ServingDeployment(namespace="s", auth_token_secret=None, name="serving-a"))
    second = by_kind(ServingDeployment(namespace="s", auth_token_secret=None, name="serving-b"))
    assert first["Deployment"]["metadata"]["name"] == "serving-a"
    assert first["Service"]["spec"]["selector"] != second["Service"]["spec"]["selector"]


def test_readiness_policy_flags() -> None:
    def args(spec: ServingDeployment) -> list[str]:
        found: list[str] = pod(spec)["containers"][0]["args"]
        return found

    assert {"--required-views=*", "--advisory-views="} <= set(args(ServingDeployment("serving", None)))
    policy = ServingDeployment(namespace="s", auth_token_secret=None, required_views=("customer-*", "merchant-profile"),
                               advisory_views=("x",))
    assert {"--required-views=customer-*,merchant-profile", "--advisory-views=x"} <= set(args(policy))


def test_auth_is_a_mounted_secret_or_explicitly_off() -> None:
    secured = pod(ServingDeployment(namespace="s", auth_token_secret="serving-tokens"))
    container = secured["containers"][0]
    assert "--auth-token-file=/var/run/streamguard/serving-auth/tokens" in container["args"]
    assert "--insecure-no-auth" not in container["args"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "auth-tokens")
    assert mount == {"name": "auth-tokens", "mountPath": "/var/run/streamguard/serving-auth", "readOnly": True}
    assert "subPath" not in mount, "a subPath mount never sees a rotated Secret"
    assert {"name": "auth-tokens", "secret": {"secretName": "serving-tokens"}} in secured["volumes"]
    insecure = pod(ServingDeployment(namespace="s", auth_token_secret=None))["containers"][0]
    assert "--insecure-no-auth" in insecure["args"] and not any("auth-token" in a for a in insecure["args"])
