"""A small local SparkSession for batch jobs (UTC, few shuffle partitions, microsecond Parquet timestamps), with
``s3a://`` on the object store when the environment holds its credentials (:mod:`streamguard.objectstore`)."""

import os

from pyspark.sql import SparkSession

from streamguard import objectstore


def local_session(app_name: str = "streamguard-batch", cores: int = 2) -> SparkSession:
    """Get or create a ``local[cores]`` session sized for a laptop; extra jars from ``STREAMGUARD_SPARK_JARS``."""
    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(cores * 2))
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", os.environ.get("STREAMGUARD_SPARK_DRIVER_MEMORY", "2g"))
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
    )
    jars = os.environ.get("STREAMGUARD_SPARK_JARS")
    if jars:
        builder = builder.config("spark.jars", jars)
    if os.environ.get(objectstore.ACCESS_KEY_ENV):
        for key, value in objectstore.s3a_settings(objectstore.Credentials.from_env()).items():
            builder = builder.config(f"spark.hadoop.{key}", value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session
