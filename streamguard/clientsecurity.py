"""How every StreamGuard client authenticates to Kafka and the Schema Registry, and which CA it trusts.

One environment contract serves the operator and every workload: the chart and the operator fill it from
Secret references (``secretKeyRef`` for user names and passwords, read-only Secret volumes for certificates
and keys), so no credential is ever a value in a spec, a manifest or a log. :class:`KafkaSecurity` turns it
into confluent-kafka settings and Spark Kafka options; :class:`RegistrySecurity` into httpx's TLS and
basic-auth options. Passwords are :class:`~pydantic.SecretStr`: their ``repr`` and ``str`` are masked.
"""

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from confluent_kafka import KafkaError
from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

KAFKA_PROTOCOL_ENV = "STREAMGUARD_KAFKA_SECURITY_PROTOCOL"
KAFKA_MECHANISM_ENV = "STREAMGUARD_KAFKA_SASL_MECHANISM"
KAFKA_USERNAME_ENV = "STREAMGUARD_KAFKA_SASL_USERNAME"
KAFKA_PASSWORD_ENV = "STREAMGUARD_KAFKA_SASL_PASSWORD"
KAFKA_CA_FILE_ENV = "STREAMGUARD_KAFKA_CA_FILE"
REGISTRY_CA_FILE_ENV = "STREAMGUARD_REGISTRY_CA_FILE"
REGISTRY_CERT_FILE_ENV = "STREAMGUARD_REGISTRY_CERT_FILE"
REGISTRY_KEY_FILE_ENV = "STREAMGUARD_REGISTRY_KEY_FILE"
REGISTRY_USERNAME_ENV = "STREAMGUARD_REGISTRY_USERNAME"
REGISTRY_PASSWORD_ENV = "STREAMGUARD_REGISTRY_PASSWORD"

AUTHENTICATION_CODES = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED})
"""librdkafka's codes for a refused TLS handshake or SASL login."""

_JAAS_MODULES: dict[str, str] = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def _set_in(environ: Mapping[str, str] | None, variables: Mapping[str, str]) -> dict[str, str]:
    """``{field: value}`` of those ``variables`` (field -> variable name) set, and not empty, in ``environ``
    (default: the process environment)."""
    env = os.environ if environ is None else environ
    return {field_name: env[name] for field_name, name in variables.items() if env.get(name)}


def _jaas_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class KafkaSecurity(BaseModel):
    """``protocol`` ``SASL_*`` needs ``username`` and ``password``; ``ca_file`` (PEM) replaces the system
    trust store for ``SSL`` and ``SASL_SSL``. Broker host names are always verified against the certificate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: KafkaProtocol = "PLAINTEXT"
    mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    ca_file: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> "KafkaSecurity":
        if self.sasl and not (self.username and self.password and self.password.get_secret_value()):
            raise ValueError(
                f"Kafka security protocol {self.protocol} needs a SASL user name and password "
                f"(${KAFKA_USERNAME_ENV}, ${KAFKA_PASSWORD_ENV}, from the Kafka credentials Secret)"
            )
        return self

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def confluent(self) -> dict[str, str]:
        """librdkafka settings (confluent-kafka's admin client, producers, consumers)."""
        config: dict[str, str] = {"security.protocol": self.protocol}
        if self.sasl:
            assert self.username is not None and self.password is not None
            config |= {"sasl.mechanism": self.mechanism, "sasl.username": self.username,
                       "sasl.password": self.password.get_secret_value()}
        if self.tls:
            config["ssl.endpoint.identification.algorithm"] = "https"
            if self.ca_file:
                config["ssl.ca.location"] = self.ca_file
        return config

    def spark(self) -> dict[str, str]:
        """Spark Kafka source/sink options (``kafka.``-prefixed Java client settings). The JAAS line carries
        the password: Spark redacts option values matching ``spark.redaction.regex`` (``password``) in its
        plans and UI."""
        options: dict[str, str] = {"kafka.security.protocol": self.protocol}
        if self.sasl:
            assert self.username is not None and self.password is not None
            options["kafka.sasl.mechanism"] = self.mechanism
            options["kafka.sasl.jaas.config"] = (
                f"{_JAAS_MODULES[self.mechanism]} required username={_jaas_quoted(self.username)} "
                f"password={_jaas_quoted(self.password.get_secret_value())};"
            )
        if self.tls and self.ca_file:
            options |= {"kafka.ssl.truststore.type": "PEM", "kafka.ssl.truststore.location": self.ca_file}
        return options

    def describe(self) -> str:
        """For logs and conditions: the protocol and the user, never the password."""
        said: str = self.protocol
        if self.sasl:
            said += f" ({self.mechanism}, user {self.username!r})"
        return said

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "KafkaSecurity":
        return cls.model_validate(_set_in(environ, {
            "protocol": KAFKA_PROTOCOL_ENV, "mechanism": KAFKA_MECHANISM_ENV, "username": KAFKA_USERNAME_ENV,
            "password": KAFKA_PASSWORD_ENV, "ca_file": KAFKA_CA_FILE_ENV}))


class RegistrySecurity(BaseModel):
    """TLS trust (``ca_file``), a TLS client certificate (``cert_file`` + ``key_file``, for registries that
    require mTLS) and HTTP basic auth (``username`` + ``password``); each optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: SecretStr | None = None

    @model_validator(mode="after")
    def _paired(self) -> "RegistrySecurity":
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError(f"a registry client certificate needs both ${REGISTRY_CERT_FILE_ENV} and "
                             f"${REGISTRY_KEY_FILE_ENV}")
        if bool(self.username) != bool(self.password):
            raise ValueError(f"registry basic auth needs both ${REGISTRY_USERNAME_ENV} and ${REGISTRY_PASSWORD_ENV}")
        return self

    def httpx_options(self) -> dict[str, Any]:
        """``verify`` (an SSL context with the CA and client certificate) and ``auth`` for httpx clients."""
        options: dict[str, Any] = {}
        if self.ca_file or self.cert_file:
            context = ssl.create_default_context(cafile=self.ca_file)
            if self.cert_file and self.key_file:
                context.load_cert_chain(self.cert_file, self.key_file)
            options["verify"] = context
        if self.username and self.password:
            options["auth"] = (self.username, self.password.get_secret_value())
        return options

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "RegistrySecurity":
        return cls.model_validate(_set_in(environ, {
            "ca_file": REGISTRY_CA_FILE_ENV, "cert_file": REGISTRY_CERT_FILE_ENV, "key_file": REGISTRY_KEY_FILE_ENV,
            "username": REGISTRY_USERNAME_ENV, "password": REGISTRY_PASSWORD_ENV}))


@dataclass(frozen=True)
class KafkaEndpoint:
    """A bootstrap list and how to authenticate to it: what every Kafka client in StreamGuard is built from."""

    bootstrap: str
    security: KafkaSecurity = field(default_factory=KafkaSecurity)

    def confluent(self, **extra: Any) -> dict[str, Any]:
        """confluent-kafka configuration: ``bootstrap.servers``, the security settings, then ``extra``
        (e.g. ``{"group.id": ...}``; pass dotted keys with ``**{"socket.timeout.ms": ...}``)."""
        return {"bootstrap.servers": self.bootstrap, **self.security.confluent(), **extra}

    def spark(self) -> dict[str, str]:
        return {"kafka.bootstrap.servers": self.bootstrap, **self.security.spark()}


class Refusals:
    """A librdkafka ``error_cb`` keeping the last TLS or SASL refusal: a client whose brokers refuse it only
    times out, and this says why."""

    def __init__(self) -> None:
        self.last: KafkaError | None = None

    def __call__(self, error: KafkaError) -> None:
        if error.code() in AUTHENTICATION_CODES:
            self.last = error
