"""Locust load test of the feature server: the "p99 < 10 ms with 50-100 users" check.

Each user asks for one full FinServe vector (every feature the server serves, or the feature set
``$STREAMGUARD_FEATURE_SET``) for a random customer / account / merchant, 10 times a second, so 50
users offer 500 and 100 users 1000 requests/s. The run fails (exit code 1) when the p99 of the
lookups is 10 ms or more or any request failed.

    streamguard serve --config features.yaml --port 8080 --insecure-no-auth &
    locust -f tests/load/locustfile.py --headless -u 100 -r 25 -t 60s --host http://127.0.0.1:8080

Entity ids follow the FinServe generator (``C000000``.., ``A000000``.., ``M00000``..); set
``STREAMGUARD_LOAD_ENTITIES`` to ``join_key=PREFIX:WIDTH:COUNT,...`` for other data.
"""

import os
import random
from typing import Any

from locust import FastHttpUser, constant_throughput, events, task
from locust.env import Environment

P99_LIMIT_MS = float(os.environ.get("STREAMGUARD_LOAD_P99_MS", "10"))
DEFAULT_ENTITIES = "customer_id=C:6:5000,account_id=A:6:6000,merchant_id=M:5:800"


def _entity_pools(spec: str) -> dict[str, list[str]]:
    pools: dict[str, list[str]] = {}
    for item in spec.split(","):
        key, _, shape = item.partition("=")
        prefix, width, count = shape.split(":")
        pools[key.strip()] = [f"{prefix}{i:0{int(width)}d}" for i in range(int(count))]
    return pools


POOLS = _entity_pools(os.environ.get("STREAMGUARD_LOAD_ENTITIES", DEFAULT_ENTITIES))


class FeatureVectorUser(FastHttpUser):
    wait_time = constant_throughput(10)
    selector: dict[str, Any] = {}
    join_keys: list[str] = []

    def on_start(self) -> None:
        if not FeatureVectorUser.selector:
            catalog = self.client.get("/catalog", name="/catalog").json()
            feature_set = os.environ.get("STREAMGUARD_FEATURE_SET")
            if feature_set:
                FeatureVectorUser.selector = {"featureSet": feature_set}
                views = {ref.split(":")[0] for ref in catalog["feature_sets"][feature_set]}
            else:
                views = set(catalog["views"])
                refs = [f"{v}:{f}" for v in sorted(views) for f in catalog["views"][v]["features"]]
                FeatureVectorUser.selector = {"features": refs}
            FeatureVectorUser.join_keys = sorted({k for v in views for k in catalog["views"][v]["entities"]})
        missing = [k for k in self.join_keys if k not in POOLS]
        if missing:
            raise RuntimeError(f"no entity ids for join keys {missing}: set STREAMGUARD_LOAD_ENTITIES")

    @task
    def lookup(self) -> None:
        row = {key: random.choice(POOLS[key]) for key in self.join_keys}
        with self.client.post(
            "/features", json={**self.selector, "entities": [row]}, name="/features", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _check(environment: Environment, **_: Any) -> None:
    stats = environment.stats.get("/features", "POST")
    p99 = stats.get_response_time_percentile(0.99)
    print(f"/features: {stats.num_requests} requests, {stats.num_failures} failures, p99 {p99:.1f} ms")
    if stats.num_requests == 0 or stats.num_failures > 0 or p99 >= P99_LIMIT_MS:
        print(f"FAILED: p99 must stay under {P99_LIMIT_MS:g} ms with no failures")
        environment.process_exit_code = 1
