"""End to end with the real writers: ``streamguard workload materialize`` (Feast layout) and the
streaming job's Redis sink (window layout); serving returns exactly what they wrote."""

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from streamguard.api.featureview import FeatureViewSpec
from streamguard.api.streamingwindow import StreamingWindowSpec
from streamguard.devstack.endpoints import Endpoints
from streamguard.jobspec import MaterializeJob, StreamJob
from streamguard.windows import WindowShape
from streamguard.workloads.streaming.panes import NEVER
from streamguard.workloads.streaming.plan import build
from streamguard.workloads.streaming.sink import RedisSink
from tests.serving.conftest import ClientFactory
from tests.serving.support import CUSTOMER, WINDOW_VIEW, finserve_manifests, write_progress
from tests.workloads.streaming.support import pane_frame

pytestmark = pytest.mark.stack


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _customer_table(rows: list[tuple[str, datetime, int]]) -> pa.Table:
    """Customer-profile rows: (customer_id, event time, seed); each feature derived from the seed."""
    columns: dict[str, list[object]] = {"customer_id": [r[0] for r in rows], "event_timestamp": [r[1] for r in rows]}
    for name, dtype in CUSTOMER:
        values: list[object] = []
        for _, _, seed in rows:
            if dtype == "INT64":
                values.append(seed * 3 + len(name))
            elif dtype == "FLOAT64":
                values.append(None if name == "credit_score" and seed == 2 else seed / 4 + len(name))
            elif dtype == "BOOL":
                values.append(seed % 2 == 1)
            else:
                values.append(f"{name}-{seed}")
        columns[name] = values
    return pa.table(columns).cast(
        pa.schema(
            [
                ("customer_id", pa.string()),
                ("event_timestamp", pa.timestamp("us", tz="UTC")),
                *(
                    (n, {"INT64": pa.int64(), "FLOAT64": pa.float64(), "BOOL": pa.bool_()}.get(t, pa.string()))
                    for n, t in CUSTOMER
                ),
            ]
        )
    )


def test_materialized_rows_are_served(
    stack: Endpoints, redis_client: redis.Redis, project: str, tmp_path: Path, serving_client: ClientFactory
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [
        ("C1", now - timedelta(hours=30), 1),  # superseded by the next row
        ("C1", now - timedelta(minutes=5), 2),
        ("C2", now - timedelta(hours=2), 3),
        ("C3", now - timedelta(days=3), 4),  # older than the 1d TTL
    ]
    pq.write_table(_customer_table(rows), tmp_path / "customer.parquet")
    view = next(d for d in finserve_manifests(project) if d["metadata"]["name"] == "customer-profile")
    view["spec"]["source"]["path"] = str(tmp_path / "customer.parquet")
    job = MaterializeJob(
        namespace="default", name="customer-profile", view=FeatureViewSpec.model_validate(view["spec"])
    )
    (tmp_path / "job.json").write_text(job.model_dump_json(by_alias=True))
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("streamguard")),
            "workload",
            "materialize",
            "--config",
            str(tmp_path / "job.json"),
            "--no-status",
            "--state-file",
            str(tmp_path / "watermark.json"),
            "--start",
            _iso(now - timedelta(days=5)),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "STREAMGUARD_REDIS_URL": stack.redis_url},
    )
    assert result.returncode == 0, result.stdout + result.stderr

    refs = [f"customer-profile:{name}" for name, _ in CUSTOMER]
    entities = [{"customer_id": c} for c in ("C1", "C2", "C3", "C404")]
    with serving_client() as client:
        body = client.post("/features", json={"features": refs, "entities": entities}).json()
        ready = client.get("/readyz").json()
    c1, c2, c3, missing = body["results"]
    table = _customer_table(rows).to_pylist()
    assert c1["values"] == [table[1][name] for name, _ in CUSTOMER]
    assert c1["values"][2] is None and c1["statuses"] == ["present"] * 8  # a null credit_score is present
    assert c1["eventTimestamps"] == [_iso(now - timedelta(minutes=5))] * 8
    assert c2["values"] == [table[2][name] for name, _ in CUSTOMER]
    assert c3["statuses"] == ["expired"] * 8 and c3["values"] == [None] * 8
    assert missing["statuses"] == ["not_found"] * 8
    # rows read count as freshness: customer-profile's newest data is 5 minutes old, within its 1h SLA
    customer = next(v for v in ready["views"] if v["view"] == "customer-profile")
    assert customer["fresh"] is True
    assert 290 <= customer["freshness_seconds"] < 600


def test_stream_sink_windows_are_served(redis_client: redis.Redis, project: str, serving_client: ClientFactory) -> None:
    docs = finserve_manifests(project)
    view = next(d for d in docs if d["metadata"]["name"] == WINDOW_VIEW and d["kind"] == "FeatureView")
    window = next(d for d in docs if d["kind"] == "StreamingWindow")
    plan = build(
        StreamJob(
            namespace="default",
            name=WINDOW_VIEW,
            window=StreamingWindowSpec.model_validate(window["spec"]),
            view_name=WINDOW_VIEW,
            view=FeatureViewSpec.model_validate(view["spec"]),
            subject=f"{project}-transactions-value",
            checkpoint_dir="/tmp/unused",
        )
    )
    sink = RedisSink(redis_client, plan)
    now_ms = int(time.time() * 1000)
    ends = {
        s: WindowShape.parse(length, slide).end_as_of(now_ms)
        for s, (length, slide) in {"1m": ("1m", "15s"), "5m": ("5m", "1m")}.items()
    }

    def batch(count: int, total: float, biggest: float) -> dict[str, list[object]]:
        """The job's changed panes: the last pane of each window holds these values."""
        return pane_frame(plan, [
            ("C7", "1m", ends["1m"], {"txn_count": count, "amount_sum": total, "amount_max": biggest}),
            ("C7", "5m", ends["5m"], {"txn_count": count + 1, "amount_sum": total + 10.0, "amount_max": biggest}),
        ])

    refs = [f"{WINDOW_VIEW}:{a}_{w}" for w in ("1m", "5m") for a in ("txn_count", "amount_sum", "amount_max")]
    request = {"features": refs, "entities": [{"customer_id": "C7"}, {"customer_id": "C8"}]}
    with serving_client() as client:
        sink.write_panes(batch(2, 40.0, 25.0), NEVER, NEVER)
        sink.heartbeat(batch_id=1, watermark_ms=now_ms - 120_000)
        # the job's progress record says it is caught up (its writer is the streaming job's progress tracker)
        write_progress(redis_client, project, time.time())
        c7, c8 = client.post("/features", json=request).json()["results"]
        assert c7["values"] == [2, 40.0, 25.0, 3, 50.0, 25.0]
        assert c8["values"] == [0, 0.0, None, 0, 0.0, None] and c8["statuses"] == ["present"] * 6
        # the fraud burst, replayed at-least-once: overwrites, never adds twice
        for _ in range(2):
            sink.write_panes(batch(19, 4800.0, 990.0), NEVER, NEVER)
        sink.heartbeat(batch_id=2, watermark_ms=now_ms - 60_000)
        write_progress(redis_client, project, time.time())
        burst = client.post("/features", json=request).json()["results"][0]
        ready = client.get("/readyz").json()
    assert burst["values"] == [19, 4800.0, 990.0, 20, 4810.0, 990.0]
    assert burst["statuses"] == ["present"] * 6
    stream_view = next(v for v in ready["views"] if v["view"] == WINDOW_VIEW)
    assert stream_view["fresh"] is True and stream_view["source"] == "stream"
