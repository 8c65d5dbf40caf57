"""Kafka, the registry and Redis in a run directory of their own, for benchmarks that must not disturb (or be
disturbed by) the shared stack's services."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streamguard.contracts.registry import API_PATH
from streamguard.devstack import versions
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.provision import artifacts
from streamguard.devstack.stack import Stack

SERVICES = ("kafka", "apicurio-registry", "redis")


@contextmanager
def private_stack(work: Path) -> Iterator[tuple[Stack, Endpoints]]:
    """Kafka, the registry and Redis in a run directory of their own, and their endpoints."""
    (work / "stack").mkdir(parents=True)
    stack = Stack(work / "stack")
    try:
        for service in SERVICES:
            stack.restart(service)
        ports = json.loads((stack.run_dir / "ports.json").read_text())
        built = artifacts()
        jars = sorted(str(p) for name in ("spark-connectors", "spark-s3a")
                      for p in (built[name].directory / "jars").glob("*.jar"))
        yield stack, Endpoints(run_dir=str(stack.run_dir), kubeconfig="", apiserver="",
                               kafka_bootstrap=f"127.0.0.1:{ports['kafka']}",
                               registry_url=f"http://127.0.0.1:{ports['registry']}{API_PATH}",
                               redis_url=f"redis://127.0.0.1:{ports['redis']}/0", bin_dir="", spark_jars=jars,
                               versions={"kafka": versions.KAFKA, "apicurio": versions.APICURIO,
                                         "spark": versions.SPARK})
    finally:
        stack.down()
