"""The serving manifests, rendered (pure)."""

from streamguard.serving.manifests import ServingDeployment, render


def test_probes_security_and_rbac() -> None:
    objects = {o["kind"]: o for o in render(ServingDeployment(namespace="serving", watch_namespace="features"))}
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
    assert render(ServingDeployment(namespace="serving")) == render(ServingDeployment(namespace="serving"))


def test_readiness_policy_flags() -> None:
    def args(spec: ServingDeployment) -> list[str]:
        deployment = next(o for o in render(spec) if o["kind"] == "Deployment")
        container_args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        return container_args

    assert {"--required-views=*", "--advisory-views="} <= set(args(ServingDeployment(namespace="serving")))
    policy = ServingDeployment(namespace="s", required_views=("customer-*", "merchant-profile"), advisory_views=("x",))
    assert {"--required-views=customer-*,merchant-profile", "--advisory-views=x"} <= set(args(policy))
