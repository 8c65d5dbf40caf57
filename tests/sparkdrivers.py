"""The chart's admission policy confining the Spark drivers of StreamingWindows with executors, as ``helm
template`` renders it for one watched namespace (tests/delivery/test_spark_driver_policy.py, and the real
executors of tests/devstack/node/test_executors.py run under it)."""

import uuid
from typing import Any

import yaml

from tests.conftest import CHART, Helm


def spark_driver_policy(helm: Helm, namespace: str, spark_image: str) -> list[dict[str, Any]]:
    """The policy and its binding for a release watching ``namespace`` whose Spark image is ``spark_image``."""
    repository, tag = spark_image.rsplit(":", 1)
    rendered = yaml.safe_load_all(helm("template", f"sd{uuid.uuid4().hex[:8]}", str(CHART), "--namespace", namespace,
                                       "--set", "operator.watchNamespaces={" + namespace + "}",
                                       "--set", f"image.sparkRepository={repository}",
                                       "--set", f"image.tag={tag}").stdout)
    return [d for d in rendered if d and d["kind"].startswith("ValidatingAdmissionPolicy")
            and d["metadata"]["name"].endswith("-spark-drivers")]
