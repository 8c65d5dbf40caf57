"""The project's two images as built from the Dockerfile: their size against the budget and what they hold,
read from the OCI archives' layers (whiteouts applied), so it is the file system every container starts from."""

from collections.abc import Callable
from pathlib import Path

import pytest

from streamguard.devstack import image
from tests.devstack.node.conftest import IMAGE_SIZE

pytestmark = pytest.mark.stack

SITE = "opt/streamguard/venv/lib/python3.11/site-packages/"
DEV_TOOLING = ("streamguard/devstack/", "streamguard/demo/")
STRAY = ("src/", "build/", "docker/", "jars/", "tmp/", "root/.cache/", "root/.m2/", "home/streamguard/.cache/",
         "var/lib/apt/lists/deb", "var/cache/apt/archives/partial/")
"""Build folders (the sources, Maven's output, the prune scripts), caches, scratch space and apt's
package lists and downloads (the base's empty apt folders and root's dotfiles are Debian's)."""


@pytest.mark.parametrize("which", ["main", "spark"])
def test_each_image_fits_its_size_budget(built_images: image.ProjectImages, which: str,
                                         record_property: Callable[[str, object], None]) -> None:
    built: image.BuiltImage = getattr(built_images, which)
    record_property(IMAGE_SIZE, f"{built.name}: {built.size_bytes / 1e9:.3f} GB "
                                f"(budget {image.SIZE_BUDGET_BYTES / 1e9:.1f} GB)")
    assert 0 < built.size_bytes <= image.SIZE_BUDGET_BYTES, f"{built.name} is {built.size_bytes / 1e9:.3f} GB"


@pytest.fixture(scope="module")
def file_lists(built_images: image.ProjectImages) -> dict[str, set[str]]:
    return {which: set(image.image_files(Path(getattr(built_images, which).archive))) for which in ("main", "spark")}


@pytest.mark.parametrize("which", ["main", "spark"])
def test_the_images_hold_runtime_code_only(file_lists: dict[str, set[str]], which: str) -> None:
    files = file_lists[which]
    ours = {p.removeprefix(SITE + "streamguard/").split("/")[0] for p in files if p.startswith(SITE + "streamguard/")}
    assert {"operator", "serving", "workloads", "api", "onlinestore", "cli.py"} <= ours, sorted(ours)
    assert not [p for p in files if p.startswith(tuple(SITE + d for d in DEV_TOOLING))]
    assert not [p for p in files if p.startswith(STRAY) or p.endswith(".deb")], \
        sorted(p for p in files if p.startswith(STRAY) or p.endswith(".deb"))[:20]
    # No installers, type checkers, dependency test suites or headers/Cython sources.
    assert not [p for p in files if p.startswith(tuple(SITE + n for n in ("pip/", "setuptools/", "mypy/")))]
    # (Evidently's `tests` packages are its data-quality tests, which `import evidently` loads.)
    assert not [p for p in files if p.startswith(SITE) and "/tests/" in p and not p.startswith(SITE + "evidently/")][:5]
    assert not [p for p in files if p.startswith(SITE) and p.endswith((".h", ".pyx", ".pxd", ".c", ".cpp"))][:5]
    assert "usr/bin/tini" in files and "home/streamguard" in files


def test_each_image_carries_its_workloads_libraries_only(file_lists: dict[str, set[str]]) -> None:
    def has(which: str, prefix: str) -> bool:
        return any(p.startswith(prefix) for p in file_lists[which])

    # The main image: Feast, Evidently, pyarrow; no JRE, no Spark.
    assert has("main", SITE + "feast/") and has("main", SITE + "evidently/") and has("main", SITE + "pyarrow/")
    assert not has("main", SITE + "pyspark/") and not has("main", "usr/lib/jvm/")
    assert not has("main", "opt/streamguard/jars")
    # The Spark image: the JRE, pyspark with its kept jars and the connectors; no Feast, no Evidently.
    assert has("spark", "usr/lib/jvm/") and has("spark", "opt/streamguard/jars/spark-sql-kafka-0-10_2.13.jar")
    assert has("spark", SITE + "pyspark/jars/spark-sql_2.13-")
    assert not has("spark", SITE + "feast/") and not has("spark", SITE + "evidently/")
    # Pruned: Spark Connect, Hive, MLlib, YARN, Volcano, the REPL; kept: the RocksDB state store and Spark on
    # Kubernetes (the executors).
    assert has("spark", SITE + "pyspark/jars/rocksdbjni-")
    assert has("spark", SITE + "pyspark/jars/spark-kubernetes_2.13-")
    assert has("spark", SITE + "pyspark/jars/vertx-core-")
    pruned = ("connect-repl/", "spark-connect_", "hive-exec-", "spark-mllib_", "spark-yarn_", "volcano-",
              "scala-compiler-")
    assert not [p for p in file_lists["spark"] if p.startswith(tuple(SITE + "pyspark/jars/" + j for j in pruned))]
