# syntax=docker/dockerfile:1.7
# Two images from one Dockerfile, both with the `streamguard` CLI as entrypoint:
#   docker build -t streamguard:0.1.0 .                        # operator, serving, materializer, drift exporter
#   docker build --target spark -t streamguard-spark:0.1.0 .   # the Spark streaming job (JRE + pyspark)
#   docker run --rm streamguard:0.1.0 --help
# One image with everything was 2.0 GB uncompressed; each of these stays under the 1.2 GB budget by carrying
# only its workloads' libraries (the `feast,drift` and `spark` extras of pyproject.toml) and by dropping
# what no container runs (docker/prune-venv.sh, docker/prune-spark-jars.sh). The operator renders the
# Spark image for StreamingWindow Deployments and the other one everywhere else.
# Every stage starts from BASE, a Debian bookworm image (its python3 is the project's 3.11): the public
# debian:bookworm-slim by default; the local stack builds it daemonless with buildah from a base it
# bootstraps from Debian's archive (`streamguard dev image`, BASE=localhost/streamguard/debian:bookworm-*).
# Runtime code only: the development tooling (streamguard/devstack, demo with the FinServe data generator)
# stays out twice: .dockerignore keeps it out of the build context, and pyproject.toml out of the
# wheel. Kept in step with the project by tests/delivery/test_dockerfile.py.

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

# -- 2. The project's sources without the development tooling the build context still carries (the
#       connectors' pom lives in devstack), and Python to install them into a virtualenv.
FROM ${BASE} AS source
ARG PYTHON_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends python${PYTHON_VERSION} python${PYTHON_VERSION}-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# pip trusts the system store (Mozilla's roots plus any CA the base adds) rather than its bundled copy.
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streamguard/ streamguard/
COPY operator/ operator/
COPY workloads/ workloads/
COPY serving/ serving/
COPY docker/ /docker/
RUN python${PYTHON_VERSION} -m venv /opt/streamguard/venv

# -- 3a. The virtualenv of the operator, serving, materializer and drift exporter (no Spark).
FROM source AS venv-main
RUN /opt/streamguard/venv/bin/pip install '.[feast,drift]' \
 && /opt/streamguard/venv/bin/streamguard --help > /dev/null \
 && sh /docker/prune-venv.sh /opt/streamguard/venv

# -- 3b. The virtualenv of the Spark jobs: pyspark, without the jars of Spark parts the jobs never load.
FROM source AS venv-spark
RUN /opt/streamguard/venv/bin/pip install '.[spark]' \
 && /opt/streamguard/venv/bin/streamguard --help > /dev/null \
 && sh /docker/prune-venv.sh /opt/streamguard/venv \
 && sh /docker/prune-spark-jars.sh /opt/streamguard/venv

# -- 4. What both images share: Debian's Python, tini as PID 1 and the non-root user (uid 10001).
FROM ${BASE} AS runtime-base
ARG PYTHON_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends python${PYTHON_VERSION} tini \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && groupadd --gid 10001 streamguard \
 && useradd --uid 10001 --gid 10001 --home-dir /home/streamguard --create-home --shell /usr/sbin/nologin streamguard
ENV PATH=/opt/streamguard/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /home/streamguard
LABEL org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/bin/tini", "--", "streamguard"]
CMD ["--help"]

# -- 5a. The Spark image: a headless JRE 17, pyspark and the connector jars (nothing fetched when a job
#        starts). Checked at build time by a windowed streaming aggregation through foreachBatch and the
#        Kafka/Avro connectors' resolution (docker/spark-smoke.py), so a jar pruned by mistake fails here.
FROM runtime-base AS spark
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless procps \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
COPY --from=venv-spark /opt/streamguard/venv /opt/streamguard/venv
COPY --from=connectors /jars /opt/streamguard/jars
ENV JAVA_HOME=/usr/lib/jvm/default-java \
    SPARK_LOCAL_DIRS=/tmp \
    STREAMGUARD_SPARK_JARS=/opt/streamguard/jars/spark-sql-kafka-0-10_2.13.jar,/opt/streamguard/jars/spark-token-provider-kafka-0-10_2.13.jar,/opt/streamguard/jars/spark-avro_2.13.jar,/opt/streamguard/jars/kafka-clients.jar,/opt/streamguard/jars/commons-pool2.jar
COPY docker/spark-smoke.py /tmp/spark-smoke.py
RUN HOME=/tmp python /tmp/spark-smoke.py && rm -rf /tmp/* /tmp/.[!.]*
USER 10001:10001
LABEL org.opencontainers.image.title="streamguard-spark" \
      org.opencontainers.image.description="StreamGuard's Spark streaming job (JRE, pyspark, Kafka and Avro connectors)"

# -- 5b. The default image: the operator, serving, the materializer and the drift exporter.
FROM runtime-base AS runtime
COPY --from=venv-main /opt/streamguard/venv /opt/streamguard/venv
USER 10001:10001
LABEL org.opencontainers.image.title="streamguard" \
      org.opencontainers.image.description="StreamGuard operator, feature serving, materialization and drift exporter"
