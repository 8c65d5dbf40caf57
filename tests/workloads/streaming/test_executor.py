"""``streamguard executor``: the executor JVM's command line from the environment Spark on Kubernetes sets; the
executor settings the job takes from the operator."""

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from kubernetes import client

from streamguard.cli import main
from streamguard.workloads.streaming.driver import owned_by
from streamguard.workloads.streaming.executor import BACKEND, java_command
from streamguard.workloads.streaming.job import EXECUTOR_POD_NAME_PREFIX, extra_spark_settings

SPARK = {
    "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@10.88.0.5:7078",
    "SPARK_EXECUTOR_ID": "2",
    "SPARK_EXECUTOR_CORES": "1",
    "SPARK_APPLICATION_ID": "spark-application-1",
    "SPARK_EXECUTOR_POD_IP": "10.88.0.7",
    "SPARK_RESOURCE_PROFILE_ID": "0",
    "SPARK_EXECUTOR_POD_NAME": "activity-stream-exec-2",
    "SPARK_EXECUTOR_MEMORY": "1024m",
    "SPARK_JAVA_OPT_10": "-Dlast",
    "SPARK_JAVA_OPT_0": "-Dspark.authenticate=true",
    "SPARK_JAVA_OPT_2": "-Dspark.driver.port=7078",
    "STREAMGUARD_SPARK_JARS": "/opt/streamguard/jars/kafka-clients.jar,/opt/streamguard/jars/spark-avro_2.13.jar",
}


def test_the_command_line_follows_sparks_environment() -> None:
    command = java_command("/jre/bin/java", Path("/venv/pyspark"), SPARK)
    # Java options in their numeric order, then the heap, the class path and the backend with its options.
    assert command[:6] == ["/jre/bin/java", "-Dspark.authenticate=true", "-Dspark.driver.port=7078", "-Dlast",
                           "-Xms1024m", "-Xmx1024m"]
    assert command[6:8] == ["-cp", "/venv/pyspark/jars/*:/opt/streamguard/jars/kafka-clients.jar:"
                            "/opt/streamguard/jars/spark-avro_2.13.jar"]
    assert command[8] == BACKEND
    options = dict(zip(command[9::2], command[10::2], strict=True))
    assert options == {"--driver-url": SPARK["SPARK_DRIVER_URL"], "--executor-id": "2", "--cores": "1",
                       "--app-id": "spark-application-1", "--hostname": "10.88.0.7", "--resourceProfileId": "0",
                       "--podName": "activity-stream-exec-2"}


def test_run_by_hand_it_names_what_spark_did_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SPARK:
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["executor"])
    assert result.exit_code == 1
    assert "not started by Spark on Kubernetes: SPARK_DRIVER_URL" in result.output


def test_each_run_names_its_executors_anew() -> None:
    conf = json.dumps({"spark.executor.instances": "2", EXECUTOR_POD_NAME_PREFIX: "activity-stream"})
    first, second = extra_spark_settings(conf), extra_spark_settings(conf)
    assert first["spark.executor.instances"] == "2"
    assert re.fullmatch(r"activity-stream-[0-9a-f]{6}", first[EXECUTOR_POD_NAME_PREFIX])
    assert first[EXECUTOR_POD_NAME_PREFIX] != second[EXECUTOR_POD_NAME_PREFIX]
    assert extra_spark_settings("") == {}
    with pytest.raises(ValueError, match="STREAMGUARD_SPARK_CONF must be a JSON object of strings"):
        extra_spark_settings('{"spark.executor.instances": 2}')


def test_leftover_executors_are_those_the_pod_owns() -> None:
    def pod(name: str, *owners: str) -> client.V1Pod:
        refs = [client.V1OwnerReference(api_version="v1", kind="Pod", name=f"driver-{uid}", uid=uid) for uid in owners]
        return client.V1Pod(metadata=client.V1ObjectMeta(name=name, owner_references=refs or None))

    pods = [pod("a-exec-1", "me"), pod("b-exec-1", "other"), pod("unowned"), pod("a-exec-2", "other", "me")]
    assert owned_by(pods, "me") == ["a-exec-1", "a-exec-2"]
