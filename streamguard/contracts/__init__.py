"""Event contracts: offline Avro compatibility checks, the Confluent wire format and registry access.

Shared core: used by the operator (subject registration), by ``streamguard plan`` / ``validate`` (CI,
offline) and by the workloads (producer, streaming job).
"""
