# syntax=docker/dockerfile:1.7
# One image for the StreamGuard operator, every workload it deploys (materializer, Spark streaming job,
# drift exporter) and the serving API. Entrypoint: the `streamguard` CLI.
#   docker build -t streamguard:0.1.0 .
#   docker run --rm streamguard:0.1.0 --help
# Every stage starts from BASE, a Debian bookworm image (its python3 is the project's 3.11): the public
# debian:bookworm-slim by default; the local stack builds it daemonless with buildah from a base it
# bootstraps from Debian's archive (`streamguard dev image`, BASE=localhost/streamguard/debian:bookworm-*).
# Everything a container needs at run time is baked in: the JRE, pyspark and the Spark Kafka/Avro
# connector jars (no Ivy/Maven downloads when a job starts). Runtime code only: the development tooling
# (streamguard/devstack, devkubelet, demo, the FinServe data generator) stays out (.dockerignore and the
# build stage). Kept in step with the project by tests/delivery/test_dockerfile.py.

ARG BASE=debian:bookworm-slim
ARG PYTHON_VERSION=3.11
ARG SPARK_VERSION=4.2.0

# -- 1. The Spark Kafka source and Avro connector jars matching the pinned pyspark, resolved by Maven from
#       the same pom the local stack uses, with versions stripped so their paths are stable.
FROM ${BASE} AS connectors
ARG SPARK_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends maven default-jre-headless ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY streamguard/devstack/maven/spark-connectors.pom.xml pom.xml
RUN mvn -q -B -f pom.xml dependency:copy-dependencies \
      -DincludeScope=runtime \
      -Dspark.version=${SPARK_VERSION} \
      -DincludeArtifactIds=spark-sql-kafka-0-10_2.13,spark-token-provider-kafka-0-10_2.13,spark-avro_2.13,kafka-clients,commons-pool2 \
      -Dmdep.stripVersion=true \
      -DoutputDirectory=/jars \
 && ls -l /jars

# -- 2. The project and its dependencies in a virtualenv (what `pip install .` does on a laptop), without
#       the development tooling the build context still carries (the connectors' pom lives in devstack).
FROM ${BASE} AS build
ARG PYTHON_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends python${PYTHON_VERSION} python${PYTHON_VERSION}-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# pip trusts the system store (Mozilla's roots plus any CA the base adds) rather than its bundled copy.
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python${PYTHON_VERSION} -m venv /opt/streamguard/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streamguard/ streamguard/
COPY operator/ operator/
COPY workloads/ workloads/
COPY serving/ serving/
# Dependencies' own test suites (pandas, scipy, sklearn, pyarrow... ~150 MB) are not run in a container.
RUN rm -rf streamguard/devstack streamguard/devkubelet streamguard/demo streamguard/finserve/generate.py \
 && /opt/streamguard/venv/bin/pip install . \
 && find /opt/streamguard/venv/lib -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} + \
 && /opt/streamguard/venv/bin/streamguard --help > /dev/null

# -- 3. Runtime: Debian's Python + a headless JRE 17 for Spark, non-root, read-only-root-filesystem friendly.
FROM ${BASE} AS runtime
ARG PYTHON_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends python${PYTHON_VERSION} default-jre-headless procps tini \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && groupadd --gid 10001 streamguard \
 && useradd --uid 10001 --gid 10001 --home-dir /home/streamguard --create-home --shell /usr/sbin/nologin streamguard
COPY --from=build /opt/streamguard/venv /opt/streamguard/venv
COPY --from=connectors /jars /opt/streamguard/jars
ENV PATH=/opt/streamguard/venv/bin:$PATH \
    JAVA_HOME=/usr/lib/jvm/default-java \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SPARK_LOCAL_DIRS=/tmp \
    STREAMGUARD_SPARK_JARS=/opt/streamguard/jars/spark-sql-kafka-0-10_2.13.jar,/opt/streamguard/jars/spark-token-provider-kafka-0-10_2.13.jar,/opt/streamguard/jars/spark-avro_2.13.jar,/opt/streamguard/jars/kafka-clients.jar,/opt/streamguard/jars/commons-pool2.jar
USER 10001:10001
WORKDIR /home/streamguard
LABEL org.opencontainers.image.title="streamguard" \
      org.opencontainers.image.description="StreamGuard operator, workloads and feature serving" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/bin/tini", "--", "streamguard"]
CMD ["--help"]
