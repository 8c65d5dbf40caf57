"""Spark's s3a settings and jars: the endpoint and region of the store, the keys left to the environment, and
hadoop-aws matching the Hadoop inside pyspark. Pure logic, no stack."""

from pathlib import Path

import pyspark

from streamguard.devstack import versions
from streamguard.objectstore import ENVIRONMENT_CREDENTIALS_PROVIDER, Credentials, s3a_settings, s3a_uri


def test_settings_name_the_store_but_not_the_keys() -> None:
    credentials = Credentials("http://10.0.0.1:8333", "eu-west-1", "AKID", "SHHH", "Secret 's3'")
    settings = s3a_settings(credentials)
    assert settings == {
        "fs.s3a.aws.credentials.provider": ENVIRONMENT_CREDENTIALS_PROVIDER,
        "fs.s3a.endpoint.region": "eu-west-1",
        "fs.s3a.endpoint": "http://10.0.0.1:8333",
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
    }
    aws = s3a_settings(Credentials("", "us-east-1", "AKID", "SHHH", "the environment"))
    assert "fs.s3a.endpoint" not in aws and "fs.s3a.path.style.access" not in aws
    assert not any(v in ("AKID", "SHHH") for v in [*settings.values(), *aws.values()])


def test_uri_and_hadoop_version() -> None:
    assert s3a_uri("s3://bucket/a/b") == "s3a://bucket/a/b"
    assert s3a_uri("/data/x") == "/data/x"
    jars = Path(pyspark.__file__).parent / "jars"
    assert (jars / f"hadoop-client-api-{versions.HADOOP}.jar").is_file(), sorted(p.name for p in jars.glob("hadoop-*"))
