"""The chart's admission policy keeps the operator's record (``streamguard.dev/registration``) the operator's.

Real apiserver: the policy and its binding as ``helm template`` renders them, a tenant who may edit
StreamingWindows (impersonated) and the operator's ServiceAccount (impersonated)."""

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import yaml

from streamguard.operator import record
from tests.conftest import CHART, Helm, Kubectl
from tests.operator import manifests
from tests.polling import wait_for

pytestmark = pytest.mark.stack

WINDOW = "customer-txn"
TENANT = "tenant-editor"


@pytest.fixture
def operator_account(helm: Helm, kubectl: Kubectl, namespace: str, crds: None) -> Iterator[str]:
    """The policy of a release watching ``namespace``; both identities may edit its StreamingWindows."""
    release = f"rp{uuid.uuid4().hex[:8]}"
    rendered = list(yaml.safe_load_all(helm("template", release, str(CHART), "--namespace", namespace,
                                            "--set", "operator.watchNamespaces={" + namespace + "}").stdout))
    policy = yaml.safe_dump_all([d for d in rendered if d and d["kind"].startswith("ValidatingAdmissionPolicy")])
    operator = next(d for d in rendered if d and d["kind"] == "Deployment"
                    and d["metadata"]["name"] == f"{release}-streamguard-operator")
    name = operator["spec"]["template"]["spec"]["serviceAccountName"]
    account = f"system:serviceaccount:{namespace}:{name}"
    editors = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "window-editor", "namespace": namespace},
         "rules": [{"apiGroups": ["streamguard.dev"], "resources": ["streamingwindows"],
                    "verbs": ["get", "list", "patch", "update"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "window-editor", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "window-editor"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": TENANT},
                      {"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
    ]
    kubectl("apply", "-f", "-", input=policy + "\n---\n" + yaml.safe_dump_all(editors))
    yield account
    kubectl("delete", "-f", "-", "--ignore-not-found", input=policy)


def annotate(kubectl: Kubectl, namespace: str, who: str, value: str | None,
             dry_run: bool = False) -> subprocess.CompletedProcess[str]:
    change = f"{record.ANNOTATION}-" if value is None else f"{record.ANNOTATION}={value}"
    extra = ["--dry-run=server"] if dry_run else []
    return kubectl("annotate", "--overwrite", f"streamingwindow/{WINDOW}", change, "-n", namespace,
                   f"--as={who}", *extra, check=False)


def recorded(kubectl: Kubectl, namespace: str) -> str | None:
    window = json.loads(kubectl("get", f"streamingwindow/{WINDOW}", "-n", namespace, "-o", "json").stdout)
    value: str | None = (window["metadata"].get("annotations") or {}).get(record.ANNOTATION)
    return value


def test_only_the_operator_writes_its_record(operator_account: str, kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifests.streaming_window(name=WINDOW)))
    first = json.dumps({"subject": "operator-tests.transactions-value", "schemaId": 1})
    forged = json.dumps({"subject": "another-namespace.payments-value", "schemaId": 7})
    # The policy is loaded asynchronously: wait until a tenant's forged record is refused (dry run: no change).
    wait_for("the record policy to refuse a tenant",
             lambda: annotate(kubectl, namespace, TENANT, forged, dry_run=True).returncode != 0, timeout=30)

    written = annotate(kubectl, namespace, operator_account, first)
    assert written.returncode == 0, written.stderr
    refused = annotate(kubectl, namespace, TENANT, forged)
    assert refused.returncode != 0
    assert f"StreamingWindow {namespace}/{WINDOW}" in refused.stderr
    assert f"metadata.annotations[{record.ANNOTATION}]" in refused.stderr
    assert recorded(kubectl, namespace) == first

    # Other edits keep the record as it is; removing it is allowed (the operator registers again).
    relabel = kubectl("label", f"streamingwindow/{WINDOW}", "team=fraud", "-n", namespace, f"--as={TENANT}",
                      check=False)
    assert relabel.returncode == 0, relabel.stderr
    removed = annotate(kubectl, namespace, TENANT, None)
    assert removed.returncode == 0, removed.stderr
    assert recorded(kubectl, namespace) is None
    assert annotate(kubectl, namespace, TENANT, forged).returncode != 0
    assert annotate(kubectl, namespace, operator_account, first).returncode == 0
    assert recorded(kubectl, namespace) == first
