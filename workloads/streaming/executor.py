"""``streamguard executor``: a Spark executor in a pod Spark on Kubernetes created.

Spark starts an executor pod from the job's image with the single argument ``executor`` and describes the
executor in the environment (``SPARK_DRIVER_URL``, ``SPARK_EXECUTOR_ID``, ``SPARK_JAVA_OPT_<n>``, ...). Spark's
own images read it in their entrypoint script; the Spark image's entrypoint is ``streamguard``, so this
command does the same: it replaces itself with the executor's JVM (pyspark's jars and the connector jars on
the class path). Python tasks of the executor run the image's interpreter, the one the driver runs.
"""

import os
from collections.abc import Mapping
from pathlib import Path

import click

BACKEND = "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend"
ARGUMENTS = (
    ("--driver-url", "SPARK_DRIVER_URL"),
    ("--executor-id", "SPARK_EXECUTOR_ID"),
    ("--cores", "SPARK_EXECUTOR_CORES"),
    ("--app-id", "SPARK_APPLICATION_ID"),
    ("--hostname", "SPARK_EXECUTOR_POD_IP"),
    ("--resourceProfileId", "SPARK_RESOURCE_PROFILE_ID"),
    ("--podName", "SPARK_EXECUTOR_POD_NAME"),
)
"""The backend's options and the variables Spark sets them in."""
JAVA_OPTION_PREFIX = "SPARK_JAVA_OPT_"


def class_path(spark_home: Path, environ: Mapping[str, str]) -> str:
    """pyspark's jars, then the connector jars the driver loads too (``$STREAMGUARD_SPARK_JARS``)."""
    connectors = [jar for jar in environ.get("STREAMGUARD_SPARK_JARS", "").split(",") if jar]
    return ":".join([str(spark_home / "jars" / "*"), *connectors])


def _option_number(name: str) -> int:
    """The ``n`` of ``SPARK_JAVA_OPT_<n>`` (Spark passes the options in that order); -1 if not a number."""
    number = name.removeprefix(JAVA_OPTION_PREFIX)
    return int(number) if number.isdigit() else -1


def java_command(java: str, spark_home: Path, environ: Mapping[str, str]) -> list[str]:
    """The executor's JVM command line from Spark's environment (pure). A variable Spark must set and did
    not raises ``KeyError`` naming it."""
    missing = [name for name in (*(name for _, name in ARGUMENTS), "SPARK_EXECUTOR_MEMORY") if not environ.get(name)]
    if missing:
        raise KeyError(f"not started by Spark on Kubernetes: {', '.join(missing)} unset")
    options = [environ[name] for name in sorted((n for n in environ if n.startswith(JAVA_OPTION_PREFIX)),
                                                key=_option_number)]
    memory = environ["SPARK_EXECUTOR_MEMORY"]
    command = [java, *options, f"-Xms{memory}", f"-Xmx{memory}", "-cp", class_path(spark_home, environ), BACKEND]
    for option, name in ARGUMENTS:
        command += [option, environ[name]]
    return command


@click.command(name="executor")
def command() -> None:
    """A Spark executor, as Spark on Kubernetes starts it in an executor pod (not run by hand)."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    java = str(Path(os.environ["JAVA_HOME"]) / "bin" / "java") if os.environ.get("JAVA_HOME") else "java"
    try:
        argv = java_command(java, spark_home, os.environ)
    except KeyError as error:
        raise click.ClickException(str(error.args[0])) from error
    os.environ.setdefault("SPARK_HOME", str(spark_home))
    os.execvp(argv[0], argv)
