"""Pinned versions of every component the local stack provisions. Caches are keyed by these."""

K8S = "v1.37.2"
K8S_STAGING = "v0.37.2"
ETCD = "v3.6.16"
HELM = "v3.22.0"
ACTIONLINT = "v1.7.12"
PROMTOOL = "v0.316.0"
"""The Go module version of Prometheus 3.16.0."""
PROMETHEUS_OPERATOR = "v0.95.2"
CONTROLLER_TOOLS = "v0.23.0"
CONTAINERD = "v2.4.2"
CNI_PLUGINS = "v1.10.0"
PAUSE_IMAGE_REPOSITORY = "localhost/streamguard/pause"
"""The sandbox image is built locally from the Kubernetes module's pause.c; its tag is that release's."""
DEBIAN_SUITE = "bookworm"
"""The image base: Debian bookworm (its python3 is 3.11, the project's Python)."""
KAFKA = "4.1.2"
APICURIO = "3.3.3"
SEAWEEDFS = "v0.0.0-20261109003541-7506e5f91cd6"
"""The Go module pseudo-version of SeaweedFS (the stack's S3-compatible object store)."""
SPARK = "4.2.0"
"""Must equal the pinned ``pyspark``: the Kafka and Avro connector jars are built per Spark release."""
SPARK_CONNECTOR_ARTIFACTS = (
    "spark-sql-kafka-0-10_2.13",
    "spark-token-provider-kafka-0-10_2.13",
    "spark-avro_2.13",
    "kafka-clients",
    "commons-pool2",
)
"""Connector jars not already shipped inside pyspark (Scala, Hadoop and compression come with it)."""
HADOOP = "3.5.0"
"""Must equal the Hadoop inside the pinned ``pyspark`` (``pyspark/jars/hadoop-client-api-*.jar``): hadoop-aws is
built per Hadoop release."""
SPARK_S3A_ARTIFACTS = ("hadoop-aws", "bundle", "analyticsaccelerator-s3")
"""Spark's ``s3a://`` filesystem and what it needs at run time: the AWS SDK v2 bundle and S3 analytics
accelerator versions hadoop-aws declares."""
