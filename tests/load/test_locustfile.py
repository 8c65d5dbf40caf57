"""The Locust file runs headless against a real server and reports its check (no timing asserted here:
the latency limit is lifted; the real check is run by hand or by ``make``, see the locustfile)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from streamguard.devstack.endpoints import Endpoints
from tests.serving.support import (
    delete_project_keys,
    finserve_manifests,
    running_server,
    unique_project,
    write_config,
    write_finserve_rows,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def test_locust_check_runs(stack: Endpoints, redis_client: redis.Redis, tmp_path: Path) -> None:
    project = unique_project()
    try:
        write_finserve_rows(redis_client, project, 20, time.time())
        config = write_config(tmp_path / "features.yaml", finserve_manifests(project))
        with running_server(config, stack.redis_url) as base:
            result = subprocess.run(
                [
                    str(Path(sys.executable).with_name("locust")), "-f", str(LOCUSTFILE), "--headless",
                    "-u", "5", "-r", "5", "-t", "6s", "--host", base, "--only-summary",
                ],
                capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
                env={
                    **os.environ,
                    "STREAMGUARD_FEATURE_SET": "fraud",
                    "STREAMGUARD_LOAD_ENTITIES": "customer_id=C:5:20,account_id=A:5:20,merchant_id=M:5:20",
                    "STREAMGUARD_LOAD_P99_MS": "60000",
                },
            )
    finally:
        delete_project_keys(redis_client, project)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "0 failures" in output
    assert "/features:" in output
