"""Offline locations: what the API accepts, the credentials a workload takes from its environment, and the
object-store env the operator renders (by reference only). Pure logic, no stack."""

from typing import Any

import pytest
from pydantic import ValidationError

from streamguard.api.driftmonitor import DriftMonitorSpec
from streamguard.api.featureview import FeatureViewSpec
from streamguard.objectstore import ObjectStoreError, resolve
from streamguard.operator.render import driftmonitor, featureview
from streamguard.operator.render.common import Owner
from streamguard.operator.settings import OperatorSettings

KEYS = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value-xyz"}


def _view(path: str, secret: str | None = None) -> FeatureViewSpec:
    source: dict[str, Any] = {"path": path}
    if secret:
        source["secretRef"] = {"name": secret}
    return FeatureViewSpec.model_validate(
        {
            "entities": [{"name": "customer", "joinKey": "customer_id"}],
            "features": [{"name": "n", "dtype": "INT64"}],
            "source": source,
        }
    )


@pytest.mark.parametrize(
    "path", ["s3://finserve/offline/customer_profile", "s3://my.bucket-1", "data/x.parquet", "/abs/path/table"]
)
def test_accepted_locations(path: str) -> None:
    assert _view(path).source is not None


@pytest.mark.parametrize("path", ["gs://bucket/x", "s3://UPPER/x", "s3://a/x", "http://host/x", "s3:/bucket/x"])
def test_refused_locations(path: str) -> None:
    with pytest.raises(ValidationError):
        _view(path)


def test_missing_keys_name_the_secret_and_never_a_value() -> None:
    with pytest.raises(ObjectStoreError) as raised:
        resolve(
            "s3://bucket/x",
            environ={"STREAMGUARD_OBJECT_STORE_SECRET": "team-s3", "AWS_ACCESS_KEY_ID": KEYS["AWS_ACCESS_KEY_ID"]},
        )
    message = str(raised.value)
    assert "Secret 'team-s3'" in message and "secretAccessKey" in message
    assert KEYS["AWS_ACCESS_KEY_ID"] not in message


def test_remote_location_carries_scrubbing_credentials_and_local_paths_resolve_against_base(tmp_path: Any) -> None:
    location = resolve("s3://bucket/prefix/", environ={**KEYS, "AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    assert location.path == "bucket/prefix"
    text = location.describe_failure(
        OSError(f"denied for {KEYS['AWS_ACCESS_KEY_ID']} / {KEYS['AWS_SECRET_ACCESS_KEY']}")
    )
    assert KEYS["AWS_ACCESS_KEY_ID"] not in text and KEYS["AWS_SECRET_ACCESS_KEY"] not in text
    assert "credentials from the environment" in text and "http://127.0.0.1:1" in text
    assert KEYS["AWS_SECRET_ACCESS_KEY"] not in repr(location.credentials)
    assert resolve("t.parquet", tmp_path).path == str(tmp_path / "t.parquet")


def _env(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    child = next(m for m in manifests if m["kind"] == kind)
    template = child["spec"]["jobTemplate"]["spec"]["template"] if kind == "CronJob" else child["spec"]["template"]
    return {e["name"]: e for e in template["spec"]["containers"][0]["env"]}


def test_materializer_gets_object_store_keys_by_optional_reference_only_for_s3() -> None:
    settings = OperatorSettings()
    owner = Owner("FeatureView", "v", "ns", "uid", 1)
    local = _env(featureview.render(owner, _view("/data/t.parquet"), settings), "CronJob")
    assert "AWS_ACCESS_KEY_ID" not in local and "STREAMGUARD_OBJECT_STORE_SECRET" not in local
    default = _env(featureview.render(owner, _view("s3://bucket/t"), settings), "CronJob")
    assert default["STREAMGUARD_OBJECT_STORE_SECRET"]["value"] == "streamguard-object-store"
    assert default["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "streamguard-object-store",
        "key": "secretAccessKey",
        "optional": True,
    }
    overridden = _env(featureview.render(owner, _view("s3://bucket/t", "team-s3"), settings), "CronJob")
    assert {
        overridden[n]["valueFrom"]["secretKeyRef"]["name"]
        for n in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    } == {"team-s3"}
    assert all("value" not in e for n, e in overridden.items() if n.startswith("AWS_"))


def test_drift_exporter_gets_the_monitors_secret_when_either_slice_is_on_s3() -> None:
    spec = DriftMonitorSpec.model_validate(
        {
            "featureView": "v",
            "reference": {"path": "/ref"},
            "current": {"path": "s3://bucket/cur"},
            "secretRef": {"name": "drift-s3"},
        }
    )
    owner = Owner("DriftMonitor", "m", "ns", "uid", 1)
    env = _env(driftmonitor.render(owner, spec, _view("/x"), OperatorSettings(), False), "Deployment")
    assert env["STREAMGUARD_OBJECT_STORE_SECRET"]["value"] == "drift-s3"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "drift-s3"
