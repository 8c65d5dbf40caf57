#!/bin/sh
# Drop the jars of the Spark parts StreamGuard's jobs never load: they run classic PySpark in local mode or
# with executors on Kubernetes (no Spark Connect, no other cluster manager), with an in-memory catalog (no
# Hive), no MLlib and no REPL. The RocksDB state store stays (the windows' state). docker/spark-smoke.py
# checks the rest still runs.
# Usage: prune-spark-jars.sh VENV
set -eu
pyspark=$(echo "$1"/lib/python3*/site-packages/pyspark)
jars=$pyspark/jars
before=$(du -sm "$jars" | cut -f1)
cd "$jars"
# Spark Connect server, its REPL and Spark Declarative Pipelines.
rm -rf connect-repl spark-connect_*.jar spark-pipelines_*.jar
# Hive: metastore, SerDes, Thrift server and their JDBC/ORM stack.
rm -f hive-*.jar spark-hive_*.jar spark-hive-thriftserver_*.jar datanucleus-*.jar derby*.jar javax.jdo-*.jar \
  jdo-api-*.jar libthrift-*.jar libfb303-*.jar javolution-*.jar HikariCP-*.jar commons-dbcp-*.jar ST4-*.jar \
  antlr-runtime-*.jar jpam-*.jar
# MLlib and GraphX with their linear algebra.
rm -f spark-mllib_*.jar spark-mllib-local_*.jar spark-graphx_*.jar breeze_*.jar breeze-macros_*.jar spire*.jar \
  cats-kernel_*.jar algebra_*.jar lapack-*.jar blas-*.jar arpack*.jar JTransforms-*.jar JLargeArrays-*.jar
# Cluster managers but Kubernetes (executors on Kubernetes, with the fabric8 client and Vert.x): YARN, and the
# Volcano batch scheduler. The JWT library serves only Spark Connect's and the UI's token filter.
rm -f volcano-*.jar jjwt-*.jar spark-yarn_*.jar
# RocksDB's native libraries for other systems than Linux with glibc on x86-64 and ARM64 (Debian's).
for jar in rocksdbjni-*.jar; do
  "$1/bin/python" - "$jar" <<'PRUNE'
import os
import sys
import zipfile

jar = sys.argv[1]
keep = {"librocksdbjni-linux64.so", "librocksdbjni-linux-aarch64.so"}
with zipfile.ZipFile(jar) as source, zipfile.ZipFile(jar + ".tmp", "w") as pruned:
    for item in source.infolist():
        if item.filename.startswith("librocksdbjni-") and item.filename not in keep:
            continue
        pruned.writestr(item, source.read(item))
os.replace(jar + ".tmp", jar)
PRUNE
done
# The Scala REPL (spark-shell).
rm -f spark-repl_*.jar scala-compiler-*.jar
# Native TLS and transport libraries for macOS and Windows.
rm -f netty-tcnative-boringssl-static-*-windows-*.jar netty-tcnative-boringssl-static-*-osx-*.jar \
  netty-transport-native-kqueue-*.jar
# Examples and sample data.
rm -rf "$pyspark/examples" "$pyspark/data"
echo "[prune-spark-jars] $jars: ${before} MB -> $(du -sm "$jars" | cut -f1) MB"
