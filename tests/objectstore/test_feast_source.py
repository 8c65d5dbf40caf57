"""Feast's file source for an s3:// view: the URI unchanged and no endpoint recorded (the writer's, e.g. the
operator's pod address, would be wrong for every other reader: each reads at its own AWS_ENDPOINT_URL).
Pure logic (imports Feast), no stack."""

from pathlib import Path

import pytest

from streamguard.api.featureview import FeatureViewSpec
from streamguard.feastrepo.objects import feast_objects


def _view(path: str) -> FeatureViewSpec:
    return FeatureViewSpec.model_validate(
        {
            "entities": [{"name": "customer", "joinKey": "customer_id"}],
            "features": [{"name": "n", "dtype": "INT64"}],
            "source": {"path": path},
        }
    )


def test_s3_source_keeps_its_uri_and_records_no_endpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://10.0.0.1:8333")
    objects = feast_objects({"remote": _view("s3://bucket/offline/t"), "local": _view("t.parquet")}, tmp_path)
    sources = {o.name: o.batch_source for o in objects if hasattr(o, "batch_source")}
    assert sources["remote"].path == "s3://bucket/offline/t"
    assert not sources["remote"].s3_endpoint_override
    assert sources["local"].path == str(tmp_path / "t.parquet")
    assert not sources["local"].s3_endpoint_override
