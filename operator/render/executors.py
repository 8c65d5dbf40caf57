"""A StreamingWindow's Spark executors on Kubernetes (``spec.executors.count > 0``): what the driver pod needs.

The job's pod stays the driver (Spark's client mode: the Deployment, its probes, its progress record and
its checkpoint are unchanged) and creates ``count`` executor pods through the API server:

- Spark's master is the ``kubernetes`` Service (``KUBERNETES_SERVICE_HOST``, set in every pod); the driver
  authenticates with its own ServiceAccount, whose Role gains pods and ConfigMaps (Spark keeps the
  executors' configuration in one) in its namespace.
- Executors reach the driver at its pod IP (downward API) on fixed ports: no DNS name is needed, so no
  headless Service. Spark authenticates them with a secret it generates per run (``spark.authenticate``).
- Executor pods are owned by the driver pod (``spark.kubernetes.driver.pod.name``): when the driver's pod
  goes, the garbage collector deletes them.
- Their pod template (a key of the job's ConfigMap) gives them the driver's security settings, the
  client-security Secrets and the checkpoint volume: executors write the windows' state into the
  checkpoint. With a ReadWriteOnce checkpoint they must run on the driver's node (a pod affinity).
"""

import json

from streamguard.api.streamingwindow import StreamingWindowSpec
from streamguard.jobspec import (
    EXECUTOR_POD_TEMPLATE_KEY,
    JOB_CONFIG_DIR,
    POD_UID_ENV,
    SPARK_CONF_ENV,
    SPARK_MASTER_ENV,
)
from streamguard.operator.render.common import (
    ClientSecurity,
    Manifest,
    Owner,
    container_security_context,
    env_value,
    labels,
    pod_security_context,
    selector_labels,
)
from streamguard.operator.settings import OperatorSettings

EXECUTOR_COMPONENT = "stream-executor"
CONTAINER = "executor"
DRIVER_PORT, BLOCK_MANAGER_PORT = 7078, 7079
MASTER = "k8s://https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"
"""Expanded by the kubelet from the ``kubernetes`` Service's variables."""
DRIVER_RULES: list[Manifest] = [
    {"apiGroups": [""], "resources": [resource],
     "verbs": ["get", "list", "watch", "create", "delete", "deletecollection"]}
    for resource in ("pods", "configmaps")
]
"""What Spark's driver does through the API server in client mode: create, watch and delete its executor
pods and their configuration ConfigMap."""
POD_NAME_PREFIX_MAX = 40
"""Spark's limit on ``spark.kubernetes.executor.podNamePrefix`` (47) less the job's ``-<6 hex>`` per run."""


def pod_name_prefix(owner: Owner) -> str:
    """``<name>-stream`` cut to fit, as a DNS label. The job appends a random part per run
    (:func:`streamguard.workloads.streaming.job.extra_spark_settings`): executors are
    ``<prefix>-<6 hex>-exec-<n>``, never the name of a pod an earlier run of the container left behind."""
    return f"{owner.name}-stream".replace(".", "-")[:POD_NAME_PREFIX_MAX].rstrip("-")


def spark_settings(owner: Owner, spec: StreamingWindowSpec, settings: OperatorSettings) -> dict[str, str]:
    executors = spec.executors
    conf = {
        "spark.submit.deployMode": "client",
        "spark.kubernetes.namespace": owner.namespace,
        "spark.kubernetes.driver.pod.name": "$(POD_NAME)",
        "spark.driver.host": "$(POD_IP)",
        "spark.driver.bindAddress": "0.0.0.0",
        "spark.driver.port": str(DRIVER_PORT),
        "spark.driver.blockManager.port": str(BLOCK_MANAGER_PORT),
        "spark.authenticate": "true",
        "spark.kubernetes.container.image": settings.spark_image,
        "spark.kubernetes.container.image.pullPolicy": settings.image_pull_policy,
        "spark.kubernetes.executor.podNamePrefix": pod_name_prefix(owner),
        "spark.kubernetes.executor.podTemplateFile": f"{JOB_CONFIG_DIR}/{EXECUTOR_POD_TEMPLATE_KEY}",
        "spark.kubernetes.executor.podTemplateContainerName": CONTAINER,
        "spark.executor.instances": str(executors.count),
        "spark.executor.cores": str(executors.cores),
        "spark.executor.memory": executors.spark_memory,
        "spark.sql.shuffle.partitions": str(max(2, executors.count * executors.cores)),
    }
    if settings.executor_cpu_request:
        conf["spark.kubernetes.executor.request.cores"] = settings.executor_cpu_request
    return conf


def driver_env(owner: Owner, spec: StreamingWindowSpec, settings: OperatorSettings) -> list[Manifest]:
    """The driver container's variables: its pod's name, IP and uid first (the settings refer to the first two;
    the uid finds executor pods an earlier run left, :mod:`streamguard.workloads.streaming.driver`)."""
    return [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": POD_UID_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        env_value(SPARK_MASTER_ENV, MASTER),
        env_value(SPARK_CONF_ENV, json.dumps(spark_settings(owner, spec, settings), sort_keys=True)),
    ]


def driver_ports() -> list[Manifest]:
    return [{"name": "spark-driver", "containerPort": DRIVER_PORT, "protocol": "TCP"},
            {"name": "spark-blocks", "containerPort": BLOCK_MANAGER_PORT, "protocol": "TCP"}]


def pod_template(owner: Owner, settings: OperatorSettings, checkpoint_volume: Manifest,
                 security: ClientSecurity) -> str:
    """The executors' pod template (JSON, which Spark reads as YAML); Spark adds the image, the arguments,
    the resources and an emptyDir at the image's ``SPARK_LOCAL_DIRS`` (``/tmp``, the only place written:
    the working directory too)."""
    spec: Manifest = {
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(settings),
        "containers": [{
            "name": CONTAINER,
            "env": [env_value("HOME", "/tmp")],
            "workingDir": "/tmp",  # an executor fetches the driver's jars and files into its working directory
            "securityContext": container_security_context(),
            "volumeMounts": [{"name": "checkpoint", "mountPath": settings.checkpoint_root}, *security.mounts],
        }],
        "volumes": [checkpoint_volume, *security.volumes],
    }
    if settings.checkpoint_access_mode == "ReadWriteOnce":
        spec["affinity"] = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": selector_labels(owner, "stream")},
            "topologyKey": "kubernetes.io/hostname",
        }]}}
    template = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"labels": {**labels(owner, EXECUTOR_COMPONENT), "app.kubernetes.io/managed-by": "spark"}},
                "spec": spec}
    return json.dumps(template, indent=2)
