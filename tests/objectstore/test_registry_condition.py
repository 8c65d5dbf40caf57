"""The ``Registered`` condition when the operator has no object-store credentials: False, naming the Secret
they should come from, and no key in the message. Pure logic (fails before any network call), no stack."""

import asyncio

import pytest

from streamguard import objectstore
from streamguard.api.featureview import FeatureViewSpec
from streamguard.finserve.resources import EXAMPLES_DIR, load_manifests
from streamguard.operator.feastregistry import CONDITION, FeastRegistry


def test_missing_credentials_name_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(objectstore.SECRET_NAME_ENV, "streamguard-object-store")
    monkeypatch.setenv(objectstore.ACCESS_KEY_ENV, "AKIDVISIBLE")
    monkeypatch.delenv(objectstore.SECRET_KEY_ENV, raising=False)
    spec: FeatureViewSpec = load_manifests(EXAMPLES_DIR).feature_views["customer-profile"].spec
    body = {"metadata": {"namespace": "ns", "name": "customer-profile"}}

    cond = asyncio.run(FeastRegistry("s3://bucket/feast/registry.db").register(body, spec))

    assert (cond.type, cond.status, cond.reason) == (CONDITION, "False", "ObjectStoreCredentials")
    assert "Secret 'streamguard-object-store'" in cond.message
    assert "secretAccessKey" in cond.message and "s3://bucket/feast/registry.db" in cond.message
    assert "AKIDVISIBLE" not in cond.message
