"""The Feast registry the operator keeps on the stack's object store: a FeatureView applied is registered
(``Registered=True``) and a fresh client holding only the registry location and the object store's
credentials finds it; a stalled reconcile keeps the condition; an update reaches it; deleting the FeatureView
removes it (the finalizer)."""

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client

from streamguard.api.common import GROUP, VERSION
from streamguard.devstack.endpoints import Endpoints
from streamguard.finserve.resources import EXAMPLES_DIR
from streamguard.operator import feastregistry
from tests.conftest import REPO, Kubectl
from tests.polling import wait_for

pytestmark = pytest.mark.stack

READER = """
import json, sys
from feast.errors import FeatureViewNotFoundException
from streamguard.feastrepo.registration import feature_store
location, namespace, project, name = sys.argv[1:]
store = feature_store(location, project, namespace=namespace)
try:
    view = store.get_feature_view(name)
except FeatureViewNotFoundException:
    print(json.dumps(None))
else:
    print(json.dumps({"features": sorted(f.name for f in view.features), "path": view.batch_source.path}))
"""


def _read(stack: Endpoints, location: str, namespace: str, project: str, name: str, cwd: Path) -> Any:
    """The view as a new process sees it, with nothing but the registry location and the credentials."""
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO), **stack.object_store_env()}
    done = subprocess.run(
        [sys.executable, "-c", READER, location, namespace, project, name],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=180, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _registered(api: client.CustomObjectsApi, namespace: str) -> dict[str, Any] | None:
    view = cast(dict[str, Any], api.get_namespaced_custom_object(GROUP, VERSION, namespace, "featureviews",
                                                                 "customer-profile"))
    conditions = (view.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == feastregistry.CONDITION), None)


def test_applied_view_is_registered_and_deleted_view_is_gone(
    stack: Endpoints,
    kube_api: client.ApiClient,
    kubectl: Kubectl,
    start_operator: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:10]
    location = f"s3://{stack.s3_bucket}/registry-tests/{run}/registry.db"
    project = f"reg{run}"
    start_operator(feast_registry=location)  # its environment holds the stack's object-store credentials
    api = client.CustomObjectsApi(kube_api)
    manifest = yaml.safe_load((EXAMPLES_DIR / "customer-profile.yaml").read_text())
    manifest["spec"]["project"] = project
    manifest["spec"]["source"]["path"] = f"s3://{stack.s3_bucket}/{run}/customer_profile"
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))


    def registered() -> dict[str, Any] | None:
        cond = _registered(api, namespace)
        return cond if cond and cond["status"] == "True" else None

    cond = wait_for("Registered=True", registered, timeout=120)
    assert project in cond["message"] and location in cond["message"]
    found = _read(stack, location, namespace, project, "customer-profile", tmp_path)
    assert found is not None
    assert found["path"] == manifest["spec"]["source"]["path"]
    assert found["features"] == sorted(f["name"] for f in manifest["spec"]["features"])

    # A stalled reconcile keeps what it did not look at: the view's ConfigMap disowned behind its back stalls
    # the view (ChildConflict), and Registered, which that reconcile never reached, stays as it was.
    child = "configmap/customer-profile-materialize"
    kubectl("patch", "-n", namespace, child, "--type=json",
            "-p", json.dumps([{"op": "remove", "path": "/metadata/ownerReferences"}]))
    kubectl("annotate", "-n", namespace, "featureview/customer-profile", f"touched={run}")

    def conditions() -> dict[str, dict[str, Any]]:
        view = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "featureviews", "customer-profile")
        return {c["type"]: c for c in (cast(dict[str, Any], view).get("status") or {}).get("conditions") or []}

    def conflict() -> dict[str, dict[str, Any]] | None:
        now = conditions()
        return now if now.get("ChildConflict", {}).get("status") == "True" else None

    stalled = wait_for("ChildConflict=True", conflict, timeout=120)
    assert stalled["Ready"]["status"] == "False"
    assert stalled[feastregistry.CONDITION]["status"] == "True", stalled
    kubectl("delete", "-n", namespace, child)
    wait_for("the conflict cleared", lambda: conditions().get("ChildConflict", {}).get("status", "False") == "False",
             timeout=120)

    dropped = manifest["spec"]["features"].pop()["name"]
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))

    def updated() -> bool:
        seen = _read(stack, location, namespace, project, "customer-profile", tmp_path)
        return seen is not None and dropped not in seen["features"]

    wait_for(f"{dropped} gone from the registered view", updated, timeout=120, interval=2)

    kubectl("delete", "-n", namespace, "featureview", "customer-profile", "--wait=true", "--timeout=120s")
    assert _read(stack, location, namespace, project, "customer-profile", tmp_path) is None
