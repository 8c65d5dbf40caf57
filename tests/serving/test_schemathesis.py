"""Schemathesis against the published OpenAPI document of a running ``streamguard serve``.

Every check runs except ``positive_data_acceptance``: a schema-valid request can still name a view or
join key the catalog does not serve (400/422 by design; the schema cannot know the catalog).
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from streamguard.devstack.endpoints import Endpoints
from tests.serving.support import (
    finserve_manifests,
    running_server,
    write_batch_freshness,
    write_config,
    write_finserve_rows,
    write_progress,
)

pytestmark = pytest.mark.stack


def test_schemathesis_finds_no_server_errors(
    stack: Endpoints, redis_client: redis.Redis, project: str, tmp_path: Path
) -> None:
    # a window SLA longer than the run, so /readyz stays 200 (a 503 counts as a server error)
    config_path = write_config(tmp_path / "features.yaml", finserve_manifests(project, window_sla="10m"))
    write_finserve_rows(redis_client, project, 3, time.time())
    write_batch_freshness(redis_client, project, time.time())
    write_progress(redis_client, project, time.time())
    with running_server(config_path, stack.redis_url, "--max-batch", "50") as base:
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("st")),
                "run",
                f"{base}/openapi.json",
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                "--max-examples",
                "150",
                "--seed",
                "20261128",
                "--workers",
                "1",
                "--generation-database",
                "none",
                "--no-color",
                "--request-timeout",
                "5",
                "--report",
                "junit",
                "--report-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            cwd=tmp_path,
        )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Server error" not in result.stdout
