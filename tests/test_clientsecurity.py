"""The client-security contract: environment in, confluent-kafka / Spark / httpx settings out, secrets masked."""

import ssl
from pathlib import Path

import pytest

from streamguard import clientsecurity
from streamguard.clientsecurity import KafkaEndpoint, KafkaSecurity, RegistrySecurity
from streamguard.devstack.certs import ensure_pki
from streamguard.jobspec import Connections

SASL_ENV = {
    clientsecurity.KAFKA_PROTOCOL_ENV: "SASL_SSL",
    clientsecurity.KAFKA_MECHANISM_ENV: "SCRAM-SHA-512",
    clientsecurity.KAFKA_USERNAME_ENV: "sg",
    clientsecurity.KAFKA_PASSWORD_ENV: 's3cr"et\\',
    clientsecurity.KAFKA_CA_FILE_ENV: "/etc/streamguard/secrets/kafka-ca/ca.crt",
}


def test_plaintext_is_the_default_and_adds_nothing_but_the_protocol() -> None:
    security = KafkaSecurity.from_env({})
    assert security.confluent() == {"security.protocol": "PLAINTEXT"}
    assert KafkaEndpoint("k:9092").spark() == {"kafka.bootstrap.servers": "k:9092",
                                               "kafka.security.protocol": "PLAINTEXT"}


def test_sasl_ssl_reaches_confluent_kafka_and_spark() -> None:
    endpoint = KafkaEndpoint("k:9093", KafkaSecurity.from_env(SASL_ENV))
    assert endpoint.confluent(**{"group.id": "g"}) == {
        "bootstrap.servers": "k:9093", "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "sg", "sasl.password": 's3cr"et\\', "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": "/etc/streamguard/secrets/kafka-ca/ca.crt", "group.id": "g",
    }
    spark = endpoint.spark()
    assert spark["kafka.security.protocol"] == "SASL_SSL"
    assert spark["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    # Quotes and backslashes in the password are escaped for the JAAS line.
    assert spark["kafka.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="sg" password="s3cr\\"et\\\\";')
    assert spark["kafka.ssl.truststore.type"] == "PEM"
    assert spark["kafka.ssl.truststore.location"] == "/etc/streamguard/secrets/kafka-ca/ca.crt"


def test_plain_mechanism_uses_the_plain_login_module() -> None:
    security = KafkaSecurity.from_env({**SASL_ENV, clientsecurity.KAFKA_MECHANISM_ENV: "PLAIN"})
    assert security.spark()["kafka.sasl.jaas.config"].startswith(
        "org.apache.kafka.common.security.plain.PlainLoginModule required")


def test_passwords_never_show_in_repr_or_description() -> None:
    security = KafkaSecurity.from_env(SASL_ENV)
    registry = RegistrySecurity(username="u", password="registry-secret")
    for text in (repr(security), str(security), security.describe(), repr(registry), repr(Connections(
            kafka_security=security, registry_security=registry))):
        assert 's3cr"et' not in text and "registry-secret" not in text
    assert security.describe() == "SASL_SSL (SCRAM-SHA-512, user 'sg')"


@pytest.mark.parametrize(("env", "names"), [
    ({clientsecurity.KAFKA_PROTOCOL_ENV: "SASL_SSL"}, clientsecurity.KAFKA_PASSWORD_ENV),
    ({clientsecurity.KAFKA_PROTOCOL_ENV: "TLS"}, "protocol"),
    ({**SASL_ENV, clientsecurity.KAFKA_MECHANISM_ENV: "GSSAPI"}, "mechanism"),
])
def test_incomplete_kafka_security_is_refused_naming_what_is_missing(env: dict[str, str], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        KafkaSecurity.from_env(env)


@pytest.mark.parametrize("env", [
    {clientsecurity.REGISTRY_CERT_FILE_ENV: "/c.crt"},
    {clientsecurity.REGISTRY_USERNAME_ENV: "u"},
])
def test_half_a_registry_credential_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="needs both"):
        RegistrySecurity.from_env(env)


def test_registry_security_builds_httpx_tls_and_basic_auth(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    security = RegistrySecurity.from_env({
        clientsecurity.REGISTRY_CA_FILE_ENV: str(pki.ca_cert),
        clientsecurity.REGISTRY_CERT_FILE_ENV: str(pki.admin_cert),
        clientsecurity.REGISTRY_KEY_FILE_ENV: str(pki.admin_key),
        clientsecurity.REGISTRY_USERNAME_ENV: "u",
        clientsecurity.REGISTRY_PASSWORD_ENV: "p",
    })
    options = security.httpx_options()
    assert isinstance(options["verify"], ssl.SSLContext)
    assert options["verify"].verify_mode == ssl.CERT_REQUIRED
    assert options["auth"] == ("u", "p")
    assert RegistrySecurity().httpx_options() == {}
