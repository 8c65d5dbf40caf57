"""Bad input gets a clear 400/413/422 naming the problem; the catalog comes from the manifests only."""

from typing import Any

import pytest

from tests.serving.conftest import ClientFactory

pytestmark = pytest.mark.stack

ROW = {"customer_id": "C1", "account_id": "A1", "merchant_id": "M1"}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"features": ["nope:age"], "entities": [ROW]}, "unknown FeatureView 'nope'"),
        ({"features": ["customer-profile:height"], "entities": [ROW]}, "no feature 'height'"),
        ({"featureSet": "marketing", "entities": [ROW]}, "unknown feature set 'marketing'"),
    ],
)
def test_unknown_view_feature_or_set_is_400(serving_client: ClientFactory, body: dict[str, Any], named: str) -> None:
    with serving_client() as client:
        response = client.post("/features", json=body)
    assert response.status_code == 400
    assert named in response.json()["detail"]


@pytest.mark.parametrize(
    ("entities", "named"),
    [
        ([{"account_id": "A1"}], "missing join key 'customer_id'"),
        ([{"customer_id": 17}], "entities[0].customer_id: expected a string"),
        ([{"customer_id": True}], "entities"),
        ([{"customer_id": 1.5}], "entities"),
        ([{"customer_id": None}], "entities"),
        ([{"customer_id": 2**70}], "entities"),
        ([{"customer_id": ["C1"]}], "entities"),
        ([], "entities"),
        ("C1", "entities"),
    ],
)
def test_malformed_entities_are_422(serving_client: ClientFactory, entities: object, named: str) -> None:
    with serving_client() as client:
        response = client.post("/features", json={"features": ["customer-profile:age"], "entities": entities})
    assert response.status_code == 422
    assert named in str(response.json()["detail"])


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"features": ["customer-profile:age"], "featureSet": "fraud", "entities": [{"customer_id": "C1"}]}',
        b'{"entities": [{"customer_id": "C1"}]}',
        b'{"features": ["customer-profile"], "entities": [{"customer_id": "C1"}]}',
        b'{"features": ["customer-profile:age"], "entities": [{"customer_id": "C1"}], "extra": 1}',
        b"[]",
    ],
)
def test_malformed_requests_are_422(serving_client: ClientFactory, body: bytes) -> None:
    with serving_client() as client:
        response = client.post("/features", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"]


def test_batch_over_the_limit_is_413(serving_client: ClientFactory) -> None:
    with serving_client(max_batch=10) as client:
        ok = client.post("/features", json={"features": ["customer-profile:age"], "entities": [ROW] * 10})
        too_many = client.post("/features", json={"features": ["customer-profile:age"], "entities": [ROW] * 11})
    assert ok.status_code == 200
    assert too_many.status_code == 413
    assert "limit is 10" in too_many.json()["detail"]


def test_catalog_lists_what_the_manifests_declare(serving_client: ClientFactory) -> None:
    with serving_client() as client:
        catalog = client.get("/catalog").json()
    assert sorted(catalog["views"]) == [
        "account-profile",
        "customer-profile",
        "customer-txn-windows",
        "merchant-profile",
    ]
    assert len(catalog["feature_sets"]["fraud"]) == 22
    assert catalog["views"]["customer-txn-windows"]["features"][:2] == ["txn_count_1m", "txn_count_5m"]
    assert catalog["problems"] == []


def test_openapi_documents_the_lookup_shapes(serving_client: ClientFactory) -> None:
    with serving_client() as client:
        spec = client.get("/openapi.json").json()
    post = spec["paths"]["/features"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LookupRequest"
    }
    assert set(post["responses"]) == {"200", "400", "401", "413", "422", "429", "503"}
    schemas = spec["components"]["schemas"]
    assert set(schemas["LookupRequest"]["properties"]) == {"features", "featureSet", "entities"}
    assert set(schemas["FeatureRow"]["properties"]) == {"values", "statuses", "eventTimestamps"}
