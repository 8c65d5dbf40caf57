"""The local development and test stack: real kube-apiserver, Kafka, Schema Registry and Redis,
provisioned from package registries and supervised as local processes. Development only."""
