"""The serving manifests, rendered (pure)."""

from typing import Any

from streamguard.serving.manifests import ServingDeployment, render


def test_probes_security_and_rbac() -> None:
    objects = {
        o["kind"]: o
        for o in render(ServingDeployment(namespace="serving", auth_token_secret="tokens", watch_namespace="features"))
    }
    assert set(objects) == {"ServiceAccount", "Role", "RoleBinding", "Deployment", "Service"}
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["args"][:3] == ["serve", "--from-cluster", "features"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "streamguard-redis"
    selector = objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= objects["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    assert objects["Service"]["spec"]["selector"] == selector
    assert objects["Role"]["metadata"]["namespace"] == "features"
    assert objects["RoleBinding"]["subjects"][0] == {
        "kind": "ServiceAccount",
        "name": "streamguard-serving",
        "namespace": "serving",
    }
    assert render(ServingDeployment("serving", "t")) == render(ServingDeployment("serving", "t"))


def test_readiness_policy_flags() -> None:
    def args(spec: ServingDeployment) -> list[str]:
        deployment = next(o for o in render(spec) if o["kind"] == "Deployment")
        container_args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        return container_args

    assert {"--required-views=*", "--advisory-views="} <= set(
        args(ServingDeployment(namespace="serving", auth_token_secret=None))
    )
    policy = ServingDeployment(
        namespace="s", auth_token_secret=None, required_views=("customer-*", "merchant-profile"), advisory_views=("x",)
    )
    assert {"--required-views=customer-*,merchant-profile", "--advisory-views=x"} <= set(args(policy))


def test_auth_is_a_mounted_secret_or_explicitly_off() -> None:
    def pod(spec: ServingDeployment) -> dict[str, Any]:
        found: dict[str, Any] = next(o for o in render(spec) if o["kind"] == "Deployment")["spec"]["template"]["spec"]
        return found

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
