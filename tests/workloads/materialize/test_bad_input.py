"""Bad input: a clear error naming the FeatureView and field, a non-zero exit, a recorded failure, and
nothing written to Redis; a range without data is a recorded empty run."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from click.testing import CliRunner

from streamguard.api.featureview import FeatureViewSpec
from streamguard.devstack.endpoints import Endpoints
from streamguard.jobspec import MaterializeJob
from streamguard.workloads.materialize.cli import command
from tests.workloads.materialize.support import delete_project, dump

ROWS = {
    "customer_id": ["C1", "C2", "C1"],
    "event_timestamp": pa.array(
        [datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC), datetime(2026, 10, 3, tzinfo=UTC)],
        pa.timestamp("us", tz="UTC"),
    ),
    "n_7d": pa.array([1, 2, 3], pa.int64()),
    "avg_30d": [1.5, None, 2.5],
}


def _spec(project: str, path: Path) -> FeatureViewSpec:
    return FeatureViewSpec.model_validate(
        {
            "project": project,
            "entities": [{"name": "customer", "joinKey": "customer_id"}],
            "features": [{"name": "n_7d", "dtype": "INT64"}, {"name": "avg_30d", "dtype": "FLOAT64"}],
            "source": {"path": str(path)},
            "ttl": "2d",
            "materialization": {"start": "2026-09-01T00:00:00Z"},
        }
    )


@pytest.fixture
def project(project: str, redis_client: redis.Redis) -> Iterator[str]:
    """The test's project; its keys in Redis are deleted afterwards."""
    yield project
    delete_project(redis_client, project)


def _run(tmp_path: Path, stack: Endpoints, spec: FeatureViewSpec, *args: str,
         redis_url: str | None = None) -> tuple[int, str, dict[str, object]]:
    config = tmp_path / "job.json"
    config.write_text(MaterializeJob(namespace="default", name="bad-view", view=spec).model_dump_json())
    state = tmp_path / "state.json"
    result = CliRunner().invoke(
        command,
        ["--config", str(config), "--no-status", "--state-file", str(state), "--no-progress", *args],
        env={"STREAMGUARD_REDIS_URL": redis_url or stack.redis_url},
    )
    recorded = json.loads(state.read_text()) if state.exists() else {}
    return result.exit_code, result.output, recorded


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda rows: {**rows, "n_7d": ["1", "2", "3"]}, "spec.features[n_7d].dtype", "SchemaMismatch"),
        (lambda rows: {k: v for k, v in rows.items() if k != "avg_30d"}, "spec.features[avg_30d]", "SchemaMismatch"),
        (lambda rows: {**rows, "customer_id": ["C1", None, "C3"]}, "spec.entities[customer_id]", "NullEntityKey"),
        (lambda rows: {**rows, "event_timestamp": ["x", "y", "z"]}, "spec.source.timestampField", "SchemaMismatch"),
        (None, "spec.source.path", "SourceMissing"),
    ],
)
def test_bad_source_fails_clearly_and_writes_nothing(
    tmp_path: Path,
    stack: Endpoints,
    redis_client: redis.Redis,
    project: str,
    mutate: object,
    field: str,
    reason: str,
) -> None:
    path = tmp_path / "source.parquet"
    if callable(mutate):
        pq.write_table(pa.table(mutate(ROWS)), path)
    code, output, recorded = _run(tmp_path, stack, _spec(project, path), "--end", "2026-10-05T00:00:00Z")
    assert code != 0
    assert "FeatureView bad-view" in output and field in output, output
    assert recorded["ok"] is False and recorded["reason"] == reason
    assert recorded["materializedUntil"] is None
    assert dump(redis_client, project) == {}


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0?cluster=true"])
def test_an_online_store_that_does_not_answer_fails_the_run_clearly_and_it_is_recorded(
    tmp_path: Path, stack: Endpoints, project: str, url: str
) -> None:
    """One server's client connects on first use, a Redis Cluster's reads the slot table when it is made: either
    way a recorded failure naming the store, not a traceback."""
    path = tmp_path / "source.parquet"
    pq.write_table(pa.table(ROWS), path)
    code, output, recorded = _run(tmp_path, stack, _spec(project, path), "--end", "2026-10-05T00:00:00Z",
                                  redis_url=url)
    assert code == 1 and "Traceback" not in output, output
    assert "FeatureView bad-view" in output and "127.0.0.1:1" in output, output
    assert recorded["ok"] is False and recorded["materializedUntil"] is None, recorded


def test_unreadable_source_and_backwards_range(
    tmp_path: Path, stack: Endpoints, redis_client: redis.Redis, project: str
) -> None:
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    code, output, recorded = _run(tmp_path, stack, _spec(project, garbage), "--end", "2026-10-05T00:00:00Z")
    assert code != 0 and "spec.source.path" in output and recorded["reason"] == "SourceUnreadable"

    good = tmp_path / "good.parquet"
    pq.write_table(pa.table(ROWS), good)
    code, output, recorded = _run(tmp_path, stack, _spec(project, good), "--end", "2026-08-01T00:00:00Z")
    assert code != 0 and "empty time range" in output and recorded["reason"] == "EmptyTimeRange"
    assert dump(redis_client, project) == {}


def test_range_without_rows_is_a_recorded_empty_run_and_reruns_are_harmless(
    tmp_path: Path, stack: Endpoints, redis_client: redis.Redis, project: str
) -> None:
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table(ROWS), good)
    spec = _spec(project, good)
    code, output, recorded = _run(tmp_path, stack, spec, "--end", "2026-09-15T00:00:00Z")
    assert code == 0, output
    assert recorded["ok"] is True and recorded["reason"] == "NoNewData" and recorded["rows"] == 0
    assert recorded["materializedUntil"] == "2026-09-15T00:00:00+00:00"
    assert dump(redis_client, project) == {}

    code, output, recorded = _run(tmp_path, stack, spec, "--end", "2026-10-05T00:00:00Z")
    assert code == 0 and recorded["rows"] == 2, output
    first = dump(redis_client, project)
    assert len(first) == 2
    code, output, recorded = _run(
        tmp_path, stack, spec, "--start", "2026-09-01T00:00:00Z", "--end", "2026-10-05T00:00:00Z"
    )
    assert code == 0 and recorded["rows"] == 0 and "2 skipped" in output, output
    assert dump(redis_client, project) == first
